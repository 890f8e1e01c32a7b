/**
 * fk: the foreign keys to cases(case_id) from case_intake_progress.case_id (ON DELETE CASCADE),
 * case_memory.case_id (CASCADE) and bot_user_context.active_case_id (SET NULL), each skipped
 * when its optional table is absent. Added the way large production teams add one to a live
 * table: every step idempotent and skipped when done (a rerun resumes), every lock taken in
 * short attempts and retried, the constraint added NOT VALID and validated in a separate
 * transaction; a shape a strategy cannot carry is refused before any step.
 */
import { sql } from 'drizzle-orm';
import type pg from 'pg';
import type { Database } from '../db/database.js';
import type { DatabaseShape } from '../db/inspect.js';
import { withClient, withRunLock, type RunLock } from '../db/locks.js';
import { ensureJournalSchema } from '../db/migrate.js';
import { describePgError } from '../db/sqlstate.js';
import { BlockedError, InterruptedError, UsageError } from '../errors.js';

export { BlockedError } from '../errors.js';
import { finishRun, startRun } from '../journal/journal.js';
import type { Logger } from '../logger.js';
import { scan } from '../scan/scan.js';
import { dependentsRefusal } from './dependents.js';
import type { Reference, ReferenceId } from './names.js';
import { inTransaction, runConcurrent, runTransaction, withLockRetries, type FkTiming } from './retry.js';
import { planScript } from './script.js';
import { presentStates, readFkState, readStates, selectReferences, type FkState } from './state.js';
import { backfillSql, firstKey, stepsFor, type FkStep, type Strategy } from './steps.js';

export type { Strategy } from './steps.js';
export type { ReferenceId } from './names.js';
export { DEFAULT_TIMING, lockTimeoutFor, type FkTiming } from './retry.js';
export { fkAbort, fkDrop, type FkAbortResult, type FkDropResult } from './undo.js';

/** Blocking findings: a foreign key (or the uuid cast) cannot be added while any exists. */
export interface Blockers {
  orphaned_progress: number;
  invalid_case_id: number;
  duplicate_progress: number;
  orphaned_memory: number;
  dangling_active_case: number;
}

/** Which findings block which reference. */
const BLOCKED_BY: Record<ReferenceId, Array<keyof Blockers>> = {
  progress: ['orphaned_progress', 'invalid_case_id', 'duplicate_progress'],
  memory: ['orphaned_memory'],
  active_case: ['dangling_active_case'],
};

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
      `${ref.table} is partitioned: caseguard fk add does not change partitioned tables ` +
      '(CREATE INDEX CONCURRENTLY and the column swap do not apply to them); nothing was changed. ' +
      `The manual path: in a maintenance window, ALTER TABLE … ALTER COLUMN ${ref.column} TYPE uuid USING ${ref.column}::uuid (it rewrites every partition); ` +
      `per partition CREATE INDEX CONCURRENTLY on (${ref.column}), then CREATE INDEX ON ONLY the parent and ALTER INDEX … ATTACH PARTITION each; ` +
      'then ADD the FOREIGN KEY on the parent (NOT VALID and VALIDATE apart on PostgreSQL 18; validated at once before 18)'
    );
  }
  return state.columnType === 'text' ? dependentsRefusal(state.dependents, strategy, ref) : undefined;
}

export async function fkBlockers(database: Database, shape: DatabaseShape): Promise<Blockers> {
  const report = await scan(database.db, shape, { databaseName: database.name, limit: 0, gate: { failOn: 'error', maxFindings: 0 } });
  const count = (id: string) => report.checks.find((c) => c.id === id)?.count ?? 0;
  return {
    orphaned_progress: count('orphaned_progress'),
    invalid_case_id: count('invalid_case_id'),
    duplicate_progress: count('duplicate_progress'),
    orphaned_memory: count('orphaned_memory'),
    dangling_active_case: count('dangling_active_case'),
  };
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

export interface FkAddOptions {
  strategy: Strategy;
  timing: FkTiming;
  batchSize: number;
  log: Logger;
  /** Only these references (default: every one whose table exists). */
  only?: ReferenceId[];
  signal?: AbortSignal;
  /** How long to wait for the run lock. */
  lockWaitMs?: number;
  /** Test hook: runs after each step; throwing there is a failure midway. */
  afterStep?: (stepId: string) => void | Promise<void>;
  onStep?: (event: { step: string; status: 'skipped' | 'done'; ms: number; attempts: number }) => void;
}

export interface FkAddResult {
  runId: number;
  references: ReferenceId[];
  steps: Array<{ id: string; status: 'skipped' | 'done'; ms: number; attempts: number }>;
  backfilled: number;
  durationMs: number;
}

export async function fkAdd(database: Database, shape: DatabaseShape, options: FkAddOptions): Promise<FkAddResult> {
  return withRunLock(
    database,
    { what: 'caseguard fk add', waitMs: options.lockWaitMs, signal: options.signal, log: options.log },
    async (lock) => {
      await ensureJournalSchema(database.pool);
      const present = (await presentStates(database.db, options.only)).map((state) => ({ reference: state.reference, state }));
      const blockers = await fkBlockers(database, shape);
      const blocking = present.flatMap((p) => BLOCKED_BY[p.reference.id]).filter((k) => blockers[k] > 0);
      if (blocking.length > 0) {
        throw new BlockedError(
          `the foreign key(s) cannot be added while ${blocking.map((k) => `${blockers[k]} ${k}`).join(', ')} finding(s) exist; run caseguard recover (with --quarantine for invalid and duplicate rows) first`,
        );
      }
      // Before any step and before the journal: a shape this strategy cannot carry is refused whole.
      const refusal = present.map((p) => fkRefusal(p.state, options.strategy)).find(Boolean);
      if (refusal) throw new UsageError(refusal);
      const started = performance.now();
      const references = present.map((p) => p.reference.id);
      const runId = await startRun(database.db, {
        command: 'fk add',
        options: { strategy: options.strategy, references, ...options.timing, batchSize: options.batchSize },
        dryRun: false,
        process: database.identity,
      });
      const log = options.log.child({ run_id: runId });
      const done: FkAddResult['steps'] = [];
      let backfilled = 0;
      try {
        for (const { reference, state: initial } of present) {
          for (const id of stepsFor(options.strategy, initial).map((s) => s.id)) {
            if (options.signal?.aborted) throw new InterruptedError(`fk add interrupted before step ${id}; rerun to resume`);
            // Re-read the state before each step: an earlier step changes it (and so a step's SQL).
            const state = (await readFkState(database.db, reference))!;
            // A step with nothing left to do may drop out of the list (carry_indexes after the swap).
            const step = stepsFor(options.strategy, state).find((s) => s.id === id);
            if (!step || step.done(state)) {
              done.push({ id, status: 'skipped', ms: 0, attempts: 0 });
              options.onStep?.({ step: id, status: 'skipped', ms: 0, attempts: 0 });
              continue;
            }
            const t0 = performance.now();
            await lock.assertHeld();
            const attempts = await withClient(database.pool, async (client) => {
              if (step.mode === 'batches') {
                const r = await backfill(client, reference, options, log, lock);
                backfilled += r.rows;
                return r.attempts;
              }
              return step.mode === 'concurrent'
                ? runConcurrent(client, step, options.timing, log)
                : runTransaction(client, step, options.timing, log);
            });
            const ms = Math.round(performance.now() - t0);
            await database.db.execute(
              sql`INSERT INTO caseguard.run_items (run_id, action, check_id, table_name, row_key, before, after)
              VALUES (${runId}, 'fk_step', NULL, ${reference.relname}, ${JSON.stringify({ step: id })}::jsonb, NULL, ${JSON.stringify({ ms, attempts })}::jsonb)`,
            );
            log.info({ event: 'fk.step_done', step: id, ms, attempts });
            done.push({ id, status: 'done', ms, attempts });
            options.onStep?.({ step: id, status: 'done', ms, attempts });
            await options.afterStep?.(id);
          }
        }
        await finishRun(database.db, runId, {
          status: 'completed',
          counts: { steps: done.filter((s) => s.status === 'done').length, backfilled },
        });
        return { runId, references, steps: done, backfilled, durationMs: performance.now() - started };
      } catch (error) {
        const status = error instanceof InterruptedError ? 'interrupted' : 'failed';
        await finishRun(database.db, runId, {
          status,
          counts: { steps: done.filter((s) => s.status === 'done').length, backfilled },
          error: describePgError(error),
        }).catch(() => undefined);
        throw error;
      }
    },
  );
}

/** Keyset pages over the table's key, each its own transaction, until a page comes back empty. */
async function backfill(
  client: pg.ClientBase,
  ref: Reference,
  options: FkAddOptions,
  log: Logger,
  lock: RunLock,
): Promise<{ rows: number; attempts: number }> {
  const statement = backfillSql(ref);
  let after = firstKey(ref);
  let rows = 0;
  let attempts = 0;
  for (let batch = 1; ; batch++) {
    if (options.signal?.aborted) throw new InterruptedError('fk add interrupted during the backfill; rerun to resume');
    await lock.assertHeld();
    const result = await withLockRetries(`${ref.id}.backfill`, options.timing, log, (lockTimeoutMs) =>
      inTransaction(client, options.timing, lockTimeoutMs, () =>
        client.query<Record<string, string>>(statement, [...after, options.batchSize]),
      ),
    );
    attempts += result.attempts;
    const last = result.value.rows[0];
    if (!last) return { rows, attempts };
    rows += Number(last.filled);
    after = ref.key.map((k) => last[k.name]!);
    log.debug({ event: 'fk.backfill_batch', reference: ref.id, batch, rows: Number(last.filled) });
  }
}
