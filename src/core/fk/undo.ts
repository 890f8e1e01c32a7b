/**
 * Going back: `fk drop` removes the constraints (and with --revert-type returns the columns to
 * text); `fk abort` removes what a partial online run left before its swap (the sync trigger, the
 * NOT NULL check, the shadow column with its index, the trigger function), returning each table
 * to the shape it had before `fk add`.
 */
import type { Database } from '../db/database.js';
import { withClient, withRunLock } from '../db/locks.js';
import { ensureJournalSchema } from '../db/migrate.js';
import { describePgError } from '../db/sqlstate.js';
import { UsageError } from '../errors.js';
import { finishRun, startRun } from '../journal/journal.js';
import type { Logger } from '../logger.js';
import { runTransaction, type FkTiming } from './retry.js';
import type { ReferenceId } from './names.js';
import { presentStates, quoted, type FkState } from './state.js';

interface UndoOptions {
  timing: FkTiming;
  /** Only these references (default: all whose table exists). */
  only?: ReferenceId[];
  log: Logger;
  signal?: AbortSignal;
  lockWaitMs?: number;
}

export interface FkDropResult {
  runId: number;
  droppedConstraints: string[];
  /** The references whose column went back to text. */
  revertedType: ReferenceId[];
}

export interface FkAbortResult {
  runId: number;
  /** What was removed, in order; empty when no partial run was there. */
  removed: string[];
}

/** Runs statements as one journaled step under the run lock, with the lock retry schedule. */
async function undoRun<T>(
  database: Database,
  command: string,
  options: UndoOptions & { runOptions: Record<string, unknown> },
  plan: (states: FkState[]) => { statements: string[]; result: (runId: number) => T },
): Promise<T> {
  return withRunLock(
    database,
    { what: `caseguard ${command}`, waitMs: options.lockWaitMs, signal: options.signal, log: options.log },
    async (lock) => {
      await ensureJournalSchema(database.pool);
      const states = await presentStates(database.db, options.only);
      const { statements, result } = plan(states);
      const runId = await startRun(database.db, { command, options: options.runOptions, dryRun: false, process: database.identity });
      try {
        if (statements.length > 0) {
          await lock.assertHeld();
          await withClient(database.pool, (client) =>
            runTransaction(client, { id: command.replace(' ', '_'), statements }, options.timing, options.log),
          );
        }
        await finishRun(database.db, runId, { status: 'completed', counts: { statements: statements.length } });
        return result(runId);
      } catch (error) {
        await finishRun(database.db, runId, { status: 'failed', counts: {}, error: describePgError(error) }).catch(() => undefined);
        throw error;
      }
    },
  );
}

/** Rollback: drop the constraints; with revertType, the columns back to text (a rewrite each). */
export async function fkDrop(database: Database, options: UndoOptions & { revertType: boolean }): Promise<FkDropResult> {
  return undoRun(
    database,
    'fk drop',
    { ...options, runOptions: { revertType: options.revertType, references: options.only ?? 'all' } },
    (states) => {
      const withFk = states.filter((s) => s.foreignKey);
      const revert = options.revertType ? states.filter((s) => s.columnType === 'uuid') : [];
      const statements: string[] = [];
      // cases first, as the application writes, so a writer holding cases cannot deadlock us
      if (withFk.length > 0) statements.push('LOCK TABLE mega_agent.cases IN SHARE ROW EXCLUSIVE MODE');
      for (const s of withFk) statements.push(`ALTER TABLE ${s.reference.table} DROP CONSTRAINT IF EXISTS ${quoted(s.foreignKey!.name)}`);
      for (const s of revert)
        statements.push(`ALTER TABLE ${s.reference.table} ALTER COLUMN ${s.reference.column} TYPE text USING ${s.reference.column}::text`);
      return {
        statements,
        result: (runId) => ({
          runId,
          droppedConstraints: withFk.map((s) => s.foreignKey!.name),
          revertedType: revert.map((s) => s.reference.id),
        }),
      };
    },
  );
}

/** What a partial online run left before its swap, and the statement that removes each. */
export function abortStatements(state: FkState): Array<{ what: string; statement: string }> {
  if (state.columnType !== 'text') return [];
  const ref = state.reference;
  const T = ref.table;
  return [
    // the trigger first: from then on writers are no longer checked against the shadow column
    ...(state.hasTrigger
      ? [{ what: `trigger ${ref.trigger} on ${ref.relname}`, statement: `DROP TRIGGER IF EXISTS ${ref.trigger} ON ${T}` }]
      : []),
    ...(state.notNullCheck !== undefined
      ? [{ what: `check ${ref.notNullCheck}`, statement: `ALTER TABLE ${T} DROP CONSTRAINT IF EXISTS ${ref.notNullCheck}` }]
      : []),
    ...(state.uniqueIndex !== undefined && ref.uniqueIndex
      ? [{ what: `index ${ref.uniqueIndex}`, statement: `DROP INDEX IF EXISTS mega_agent.${ref.uniqueIndex}` }]
      : []),
    ...(state.hasShadow
      ? [{ what: `column ${ref.relname}.${ref.shadow}`, statement: `ALTER TABLE ${T} DROP COLUMN IF EXISTS ${ref.shadow}` }]
      : []),
    ...(state.hasFunction ? [{ what: `function ${ref.fn}()`, statement: `DROP FUNCTION IF EXISTS ${ref.fn}()` }] : []),
  ];
}

/** Why there is nothing to abort although a run is unfinished: it is past its swap. */
export function abortRefusal(states: FkState[]): string | undefined {
  if (states.some((s) => abortStatements(s).length > 0)) return undefined;
  const pastSwap = states.filter((s) => s.columnType === 'uuid' && !s.foreignKey?.validated);
  if (pastSwap.length === 0) return undefined;
  return `${pastSwap.map((s) => `${s.reference.relname}.${s.reference.column}`).join(', ')} is uuid already: the online run is past its swap, so there is nothing to abort; caseguard fk add finishes it, caseguard fk drop --revert-type rolls it back`;
}

/** Undoes the partial online runs that have not swapped their columns yet. */
export async function fkAbort(database: Database, options: UndoOptions): Promise<FkAbortResult> {
  return undoRun(database, 'fk abort', { ...options, runOptions: { references: options.only ?? 'all' } }, (states) => {
    const refusal = abortRefusal(states);
    if (refusal) throw new UsageError(refusal);
    const parts = states.flatMap(abortStatements);
    return { statements: parts.map((p) => p.statement), result: (runId) => ({ runId, removed: parts.map((p) => p.what) }) };
  });
}
