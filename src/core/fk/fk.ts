/**
 * fk: the foreign keys to cases(case_id) from case_intake_progress.case_id (ON DELETE CASCADE),
 * case_memory.case_id (CASCADE) and bot_user_context.active_case_id (SET NULL), each skipped
 * when its optional table is absent. Added the way large production teams add one to a live
 * table: every step idempotent and skipped when done (a rerun resumes), every lock taken in
 * short attempts and retried, the constraint added NOT VALID and validated in a separate
 * transaction; a shape a strategy cannot carry is refused before any step.
 */
import type { Database } from '../db/database.js';
import type { DatabaseShape } from '../db/inspect.js';
import { scan } from '../scan/scan.js';
import { FK_BLOCKING_CHECKS, type CheckId } from '../scan/checks.js';
import { dependentsRefusal } from './dependents.js';
import type { ReferenceId, Strategy } from './names.js';
import type { FkTiming } from './retry.js';
import { planScript } from './script.js';
import { readStates, selectReferences, type FkState } from './state.js';
import { stepsFor, type FkStep } from './steps.js';

export type { ReferenceId, Strategy } from './names.js';
export { DEFAULT_TIMING, lockTimeoutFor, type FkTiming } from './retry.js';

/** Findings that block a foreign key (or the uuid cast), by check (see CHECKS, blocks): fk add refuses while any exists. */
export type Blockers = Partial<Record<CheckId, number>>;

export interface ReferenceStatus {
  reference: ReferenceId;
  /** Absent: its optional table is not there (nothing to add). */
  state?: FkState;
  phase: 'absent' | 'not_started' | 'partial' | 'complete';
  /** Why fk add would refuse this reference with the strategy, before any step. */
  refusal?: string;
  steps: Array<{ id: string; title: string; done: boolean }>;
}

export interface FkStatus {
  references: ReferenceStatus[];
  blockers: Blockers;
  /** Every present reference has its validated FK. */
  complete: boolean;
}

export function phaseOf(state: FkState | undefined): ReferenceStatus['phase'] {
  if (!state) return 'absent';
  if (state.foreignKey?.validated) return 'complete';
  const started =
    state.hasShadow ||
    state.hasTrigger ||
    state.hasFunction ||
    state.notNullCheck !== undefined ||
    state.uniqueIndex !== undefined ||
    state.columnType === 'uuid' ||
    state.foreignKey !== undefined;
  return started ? 'partial' : 'not_started';
}

/**
 * Why fk add cannot run on a reference with this strategy, before any step: a partitioned table,
 * or schema objects of the application's that depend on the column and that the strategy would lose.
 */
export function fkRefusal(state: FkState, strategy: Strategy): string | undefined {
  if (state.foreignKey?.validated) return undefined;
  const ref = state.reference;
  if (state.partitioned) {
    return (
      `${ref.qualified} is partitioned: caseguard fk add does not change partitioned tables ` +
      '(CREATE INDEX CONCURRENTLY and the column swap do not apply to them); nothing was changed. ' +
      `The manual path: in a maintenance window, ALTER TABLE … ALTER COLUMN ${ref.column} TYPE uuid USING ${ref.column}::uuid (it rewrites every partition); ` +
      `per partition CREATE INDEX CONCURRENTLY on (${ref.column}), then CREATE INDEX ON ONLY the parent and ALTER INDEX … ATTACH PARTITION each; ` +
      'then ADD the FOREIGN KEY on the parent (NOT VALID and VALIDATE apart on PostgreSQL 18; validated at once before 18)'
    );
  }
  return state.columnType === 'text' ? dependentsRefusal(state.dependents, strategy, ref) : undefined;
}

/**
 * The blocking findings' counts. Only the references asked for count, and a reference whose
 * foreign key is validated already needs no look (the database proves its checks).
 */
export async function fkBlockers(database: Database, shape: DatabaseShape, states?: FkState[]): Promise<Blockers> {
  const open = new Set((states ?? []).filter((s) => !s.foreignKey?.validated).map((s) => s.reference.id));
  const checks = FK_BLOCKING_CHECKS.filter((c) => !states || open.has(c.blocks!.reference));
  if (checks.length === 0) return Object.fromEntries(FK_BLOCKING_CHECKS.map((c) => [c.id, 0]));
  const report = await scan(database.db, shape, { databaseName: database.name, limit: 0, gate: { failOn: 'error', maxFindings: 0 } });
  return Object.fromEntries(FK_BLOCKING_CHECKS.map((c) => [c.id, report.checks.find((r) => r.id === c.id)?.count ?? 0]));
}

/** The findings that block the given references: "3 orphaned_progress, 1 orphaned_memory"; empty when none. */
export function blockingFindings(blockers: Blockers, references: ReferenceId[]): string[] {
  return FK_BLOCKING_CHECKS.filter((c) => references.includes(c.blocks!.reference) && (blockers[c.id] ?? 0) > 0).map(
    (c) => `${blockers[c.id]} ${c.id}`,
  );
}

export async function fkStatus(
  database: Database,
  shape: DatabaseShape,
  options: { strategy?: Strategy; only?: ReferenceId[] } = {},
): Promise<FkStatus> {
  const strategy = options.strategy ?? 'online';
  const references: ReferenceStatus[] = (await readStates(database.db, selectReferences(options.only))).map(({ reference, state }) => ({
    reference: reference.id,
    state,
    phase: phaseOf(state),
    refusal: state ? fkRefusal(state, strategy) : undefined,
    steps: state ? stepsFor(strategy, state).map((s) => ({ id: s.id, title: s.title, done: s.done(state) })) : [],
  }));
  return {
    references,
    blockers: await fkBlockers(database, shape),
    complete: references.every((r) => r.phase === 'complete' || r.phase === 'absent'),
  };
}

export interface FkPlan {
  strategy: Strategy;
  timing: FkTiming;
  references: ReferenceId[];
  steps: Array<Omit<FkStep, 'done'> & { done: boolean }>;
  /** The whole plan as a script psql runs (script.ts). */
  script: string;
  /** Why fk add would refuse before any step; the script is then not to be run. */
  refusal?: string;
}

export function fkPlan(states: FkState[], strategy: Strategy, timing: FkTiming, batchSize: number): FkPlan {
  const steps = states.flatMap((state) =>
    stepsFor(strategy, state).map(({ done, ...s }) => ({ ...s, done: done(state), reference: state.reference })),
  );
  const refusal = states.map((s) => fkRefusal(s, strategy)).find(Boolean);
  return {
    strategy,
    timing,
    references: states.map((s) => s.reference.id),
    steps: steps.map(({ reference: _reference, ...s }) => s),
    script: planScript({ strategy, steps, timing, batchSize }),
    refusal,
  };
}
