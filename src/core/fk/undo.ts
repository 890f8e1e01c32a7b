/**
 * Going back: `fk drop` removes the constraints (and with --revert-type returns the columns to
 * text); `fk abort` removes what a partial online run left before its swap (the sync trigger, the
 * NOT NULL check, the shadow column with its index, the trigger function), returning each table
 * to the shape it had before `fk add`.
 */
import type { Database } from '../db/database.js';
import { runBlockers } from '../db/locks.js';
import { assertUnblocked, ExitCode, type Blocker } from '../errors.js';
import { runOptionsOf, withJournaledRun, type RunOptions } from '../journal/run.js';
import { quoted, type ReferenceId } from './names.js';
import { runTransaction, type FkTiming } from './retry.js';
import { presentStates, type FkState } from './state.js';

/** What fk drop or fk abort runs: one transaction of statements, with the lock retry schedule. */
interface StatementsPlan {
  references: ReferenceId[];
  timing: FkTiming;
  statements: string[];
  blockers: Blocker[];
}

export interface FkDropPlan extends StatementsPlan {
  revertType: boolean;
  droppedConstraints: string[];
  /** The references whose column goes back to text. */
  revertedType: ReferenceId[];
}

export interface FkDropResult {
  runId: number;
  droppedConstraints: string[];
  revertedType: ReferenceId[];
}

export interface FkAbortPlan extends StatementsPlan {
  /** What is removed, in order; empty when no partial run is there. */
  removed: string[];
}

export interface FkAbortResult {
  runId: number;
  removed: string[];
}

/** Runs a plan's statements as one journaled step under the run lock, with the lock retry schedule. */
async function applyStatements(
  database: Database,
  command: string,
  plan: StatementsPlan,
  runOptions: Record<string, unknown>,
  options: RunOptions,
): Promise<number> {
  assertUnblocked(plan);
  return withJournaledRun(database, { ...runOptionsOf(options), command, options: runOptions, unit: 'step' }, async (run) => {
    if (plan.statements.length > 0) {
      await run.checkpoint('before it began');
      await run.withSession((session) =>
        runTransaction(session.$client, { id: command.replace(' ', '_'), statements: plan.statements }, plan.timing, run.log),
      );
    }
    run.counts.statements = plan.statements.length;
    return { status: 'completed', value: run.id };
  });
}

/** Rollback: drop the constraints; with revertType, the columns back to text (a rewrite each). */
export async function planFkDrop(
  database: Database,
  options: { timing: FkTiming; revertType: boolean; only?: ReferenceId[] },
): Promise<FkDropPlan> {
  const states = await presentStates(database.db, options.only);
  const withFk = states.filter((s) => s.foreignKey);
  const revert = options.revertType ? states.filter((s) => s.columnType === 'uuid') : [];
  const statements: string[] = [];
  // cases first, as the application writes, so a writer holding cases cannot deadlock us
  if (withFk.length > 0) statements.push('LOCK TABLE mega_agent.cases IN SHARE ROW EXCLUSIVE MODE');
  for (const s of withFk) statements.push(`ALTER TABLE ${s.reference.qualified} DROP CONSTRAINT IF EXISTS ${quoted(s.foreignKey!.name)}`);
  for (const s of revert) {
    statements.push(`ALTER TABLE ${s.reference.qualified} ALTER COLUMN ${s.reference.column} TYPE text USING ${s.reference.column}::text`);
  }
  return {
    references: states.map((s) => s.reference.id),
    timing: options.timing,
    revertType: options.revertType,
    statements,
    droppedConstraints: withFk.map((s) => s.foreignKey!.name),
    revertedType: revert.map((s) => s.reference.id),
    blockers: await runBlockers(database, 'caseguard fk drop'),
  };
}

export async function applyFkDrop(database: Database, plan: FkDropPlan, options: RunOptions): Promise<FkDropResult> {
  const runOptions = { revertType: plan.revertType, references: plan.references };
  const runId = await applyStatements(database, 'fk drop', plan, runOptions, options);
  return { runId, droppedConstraints: plan.droppedConstraints, revertedType: plan.revertedType };
}

/** What a partial online run left before its swap, and the statement that removes each. */
function abortStatements(state: FkState): Array<{ what: string; statement: string }> {
  if (state.columnType !== 'text') return [];
  const ref = state.reference;
  const T = ref.qualified;
  return [
    // the trigger first: from then on writers are no longer checked against the shadow column
    ...(state.hasTrigger
      ? [{ what: `trigger ${ref.trigger} on ${ref.table}`, statement: `DROP TRIGGER IF EXISTS ${ref.trigger} ON ${T}` }]
      : []),
    ...(state.notNullCheck !== undefined
      ? [{ what: `check ${ref.notNullCheck}`, statement: `ALTER TABLE ${T} DROP CONSTRAINT IF EXISTS ${ref.notNullCheck}` }]
      : []),
    ...(state.uniqueIndex !== undefined && ref.uniqueIndex
      ? [{ what: `index ${ref.uniqueIndex}`, statement: `DROP INDEX IF EXISTS mega_agent.${ref.uniqueIndex}` }]
      : []),
    ...(state.hasShadow
      ? [{ what: `column ${ref.table}.${ref.shadow}`, statement: `ALTER TABLE ${T} DROP COLUMN IF EXISTS ${ref.shadow}` }]
      : []),
    ...(state.hasFunction ? [{ what: `function ${ref.fn}()`, statement: `DROP FUNCTION IF EXISTS ${ref.fn}()` }] : []),
  ];
}

/** Why there is nothing to abort although a run is unfinished: it is past its swap. */
function abortRefusal(states: FkState[]): string | undefined {
  if (states.some((s) => abortStatements(s).length > 0)) return undefined;
  const pastSwap = states.filter((s) => s.columnType === 'uuid' && !s.foreignKey?.validated);
  if (pastSwap.length === 0) return undefined;
  return `${pastSwap.map((s) => `${s.reference.table}.${s.reference.column}`).join(', ')} is uuid already: the online run is past its swap, so there is nothing to abort; caseguard fk add finishes it, caseguard fk drop --revert-type rolls it back`;
}

/** Undoing the partial online runs that have not swapped their columns yet; a run past its swap is a blocker. */
export async function planFkAbort(database: Database, options: { timing: FkTiming; only?: ReferenceId[] }): Promise<FkAbortPlan> {
  const states = await presentStates(database.db, options.only);
  const parts = states.flatMap(abortStatements);
  const blockers = await runBlockers(database, 'caseguard fk abort');
  const refusal = abortRefusal(states);
  if (refusal) blockers.push({ reason: refusal, exitCode: ExitCode.usage });
  return {
    references: states.map((s) => s.reference.id),
    timing: options.timing,
    statements: parts.map((p) => p.statement),
    removed: parts.map((p) => p.what),
    blockers,
  };
}

export async function applyFkAbort(database: Database, plan: FkAbortPlan, options: RunOptions): Promise<FkAbortResult> {
  const runId = await applyStatements(database, 'fk abort', plan, { references: plan.references }, options);
  return { runId, removed: plan.removed };
}
