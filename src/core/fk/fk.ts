/**
 * fk: the foreign key from case_intake_progress.case_id to cases.case_id, added the way large
 * production teams add one to a live table: every step idempotent and skipped when done (a
 * rerun resumes), every lock taken with lock_timeout and retried with backoff, the constraint
 * added NOT VALID and validated in a separate transaction.
 */
import { sql } from 'drizzle-orm';
import type pg from 'pg';
import type { Database } from '../db/database.js';
import type { DatabaseShape } from '../db/inspect.js';
import { withClient, withRunLock, type RunLock } from '../db/locks.js';
import { ensureJournalSchema } from '../db/migrate.js';
import { describePgError } from '../db/sqlstate.js';
import { CaseguardError, ExitCode, InterruptedError, UsageError } from '../errors.js';
import { finishRun, startRun } from '../journal/journal.js';
import type { Logger } from '../logger.js';
import { scan } from '../scan/scan.js';
import { dependentsRefusal } from './dependents.js';
import { inTransaction, runConcurrent, runTransaction, withLockRetries, type FkTiming } from './retry.js';
import { readFkState, type FkState } from './state.js';
import { planScript } from './script.js';
import { BACKFILL_SQL, stepsFor, type FkStep, type Strategy } from './steps.js';

export type { Strategy } from './steps.js';
export { DEFAULT_TIMING, lockTimeoutFor, type FkTiming } from './retry.js';
export { fkAbort, fkDrop, type FkAbortResult, type FkDropResult } from './undo.js';

/** Blocking findings: the FK (or the uuid cast) cannot be added while any exists. */
export interface Blockers {
  orphaned_progress: number;
  invalid_case_id: number;
  duplicate_progress: number;
}

export interface FkStatus {
  state: FkState;
  blockers: Blockers;
  /** True when the FK exists and is validated. */
  complete: boolean;
  /**
   * not_started; partial: a run stopped midway (fk add resumes it; before the swap, fk abort
   * undoes it); complete: the FK is validated.
   */
  phase: 'not_started' | 'partial' | 'complete';
  /** Why fk add would refuse with this strategy before any step (partitioned, dependents it cannot carry). */
  refusal?: string;
  steps: Array<{ id: string; title: string; done: boolean }>;
}

/**
 * Why fk add cannot run with this strategy, before any step: a partitioned table, or schema
 * objects of the application's that depend on case_id and that the strategy would lose.
 */
export function fkRefusal(state: FkState, strategy: Strategy): string | undefined {
  if (state.foreignKey?.validated) return undefined;
  if (state.partitioned) {
    return (
      'mega_agent.case_intake_progress is partitioned: caseguard fk add does not change partitioned tables ' +
      '(CREATE INDEX CONCURRENTLY and the column swap do not apply to them); nothing was changed. ' +
      'The manual path: in a maintenance window, ALTER TABLE … ALTER COLUMN case_id TYPE uuid USING case_id::uuid (it rewrites every partition); ' +
      'per partition CREATE INDEX CONCURRENTLY on (case_id), then CREATE INDEX ON ONLY the parent and ALTER INDEX … ATTACH PARTITION each; ' +
      'then ADD the FOREIGN KEY on the parent (NOT VALID and VALIDATE apart on PostgreSQL 18; validated at once before 18)'
    );
  }
  return state.columnType === 'text' ? dependentsRefusal(state.dependents, strategy) : undefined;
}

export async function fkBlockers(database: Database, shape: DatabaseShape): Promise<Blockers> {
  const report = await scan(database.db, shape, { databaseName: database.name, limit: 0, gate: { failOn: 'error', maxFindings: 0 } });
  const count = (id: string) => report.checks.find((c) => c.id === id)?.count ?? 0;
  return { orphaned_progress: count('orphaned_progress'), invalid_case_id: count('invalid_case_id'), duplicate_progress: count('duplicate_progress') };
}

export async function fkStatus(database: Database, shape: DatabaseShape, strategy: Strategy = 'online'): Promise<FkStatus> {
  const state = await readFkState(database.db);
  const blockers = await fkBlockers(database, shape);
  const complete = state.foreignKey?.validated === true;
  const started = state.hasShadow || state.hasTrigger || state.hasFunction || state.notNullCheck !== undefined || state.uniqueIndex !== undefined || state.columnType === 'uuid' || state.foreignKey !== undefined;
  return {
    state,
    blockers,
    complete,
    phase: complete ? 'complete' : started ? 'partial' : 'not_started',
    refusal: fkRefusal(state, strategy),
    steps: stepsFor(strategy, state).map((s) => ({ id: s.id, title: s.title, done: s.done(state) })),
  };
}

export interface FkPlan {
  strategy: Strategy;
  timing: FkTiming;
  state: FkState;
  steps: Array<Omit<FkStep, 'done'> & { done: boolean }>;
  /** The whole plan as a script psql runs (script.ts). */
  script: string;
  /** Why fk add would refuse before any step; the script is then not to be run. */
  refusal?: string;
}

export function fkPlan(state: FkState, strategy: Strategy, timing: FkTiming, batchSize: number): FkPlan {
  const steps = stepsFor(strategy, state).map(({ done, ...s }) => ({ ...s, done: done(state) }));
  return { strategy, timing, state, steps, script: planScript({ strategy, steps, timing, batchSize }), refusal: fkRefusal(state, strategy) };
}

export interface FkAddOptions {
  strategy: Strategy;
  timing: FkTiming;
  batchSize: number;
  log: Logger;
  signal?: AbortSignal;
  /** How long to wait for the run lock. */
  lockWaitMs?: number;
  /** Test hook: runs after each step; throwing there is a failure midway. */
  afterStep?: (stepId: string) => void | Promise<void>;
  onStep?: (event: { step: string; status: 'skipped' | 'done'; ms: number; attempts: number }) => void;
}

export interface FkAddResult {
  runId: number;
  steps: Array<{ id: string; status: 'skipped' | 'done'; ms: number; attempts: number }>;
  backfilled: number;
  durationMs: number;
}

export class BlockedError extends CaseguardError {
  constructor(message: string) {
    super(message, ExitCode.findings);
  }
}

export async function fkAdd(database: Database, shape: DatabaseShape, options: FkAddOptions): Promise<FkAddResult> {
  return withRunLock(database, { what: 'caseguard fk add', waitMs: options.lockWaitMs, signal: options.signal, log: options.log }, async (lock) => {
    await ensureJournalSchema(database.pool);
    const blockers = await fkBlockers(database, shape);
    const blocking = Object.entries(blockers).filter(([, n]) => n > 0);
    if (blocking.length > 0) {
      throw new BlockedError(
        `the foreign key cannot be added while ${blocking.map(([k, n]) => `${n} ${k}`).join(', ')} finding(s) exist; run caseguard recover (with --quarantine for invalid and duplicate rows) first`,
      );
    }
    // Before any step and before the journal: a shape this strategy cannot carry is refused whole.
    const refusal = fkRefusal(await readFkState(database.db), options.strategy);
    if (refusal) throw new UsageError(refusal);
    const started = performance.now();
    const runId = await startRun(database.db, { command: 'fk add', options: { strategy: options.strategy, ...options.timing, batchSize: options.batchSize }, dryRun: false, process: database.identity });
    const log = options.log.child({ run_id: runId });
    const done: FkAddResult['steps'] = [];
    let backfilled = 0;
    try {
      const ids = stepsFor(options.strategy, await readFkState(database.db)).map((s) => s.id);
      for (const id of ids) {
        if (options.signal?.aborted) throw new InterruptedError(`fk add interrupted before step ${id}; rerun to resume`);
        // Re-read the state before each step: an earlier step changes it (and so a step's SQL).
        const state = await readFkState(database.db);
        const step = stepsFor(options.strategy, state).find((s) => s.id === id)!;
        if (step.done(state)) {
          done.push({ id, status: 'skipped', ms: 0, attempts: 0 });
          options.onStep?.({ step: id, status: 'skipped', ms: 0, attempts: 0 });
          continue;
        }
        const t0 = performance.now();
        await lock.assertHeld();
        const attempts = await withClient(database.pool, async (client) => {
          if (step.mode === 'batches') {
            const r = await backfill(client, options, log, lock);
            backfilled += r.rows;
            return r.attempts;
          }
          return step.mode === 'concurrent' ? runConcurrent(client, step, options.timing, log) : runTransaction(client, step, options.timing, log);
        });
        const ms = Math.round(performance.now() - t0);
        await database.db.execute(
          sql`INSERT INTO caseguard.run_items (run_id, action, check_id, table_name, row_key, before, after)
            VALUES (${runId}, 'fk_step', NULL, 'case_intake_progress', ${JSON.stringify({ step: id })}::jsonb, NULL, ${JSON.stringify({ ms, attempts })}::jsonb)`,
        );
        log.info({ event: 'fk.step_done', step: id, ms, attempts });
        done.push({ id, status: 'done', ms, attempts });
        options.onStep?.({ step: id, status: 'done', ms, attempts });
        await options.afterStep?.(id);
      }
      await finishRun(database.db, runId, { status: 'completed', counts: { steps: done.filter((s) => s.status === 'done').length, backfilled } });
      return { runId, steps: done, backfilled, durationMs: performance.now() - started };
    } catch (error) {
      const status = error instanceof InterruptedError ? 'interrupted' : 'failed';
      await finishRun(database.db, runId, { status, counts: { steps: done.filter((s) => s.status === 'done').length, backfilled }, error: describePgError(error) }).catch(() => undefined);
      throw error;
    }
  });
}

async function backfill(client: pg.ClientBase, options: FkAddOptions, log: Logger, lock: RunLock): Promise<{ rows: number; attempts: number }> {
  let after: [string, string] = ['', ''];
  let rows = 0;
  let attempts = 0;
  for (let batch = 1; ; batch++) {
    if (options.signal?.aborted) throw new InterruptedError('fk add interrupted during the backfill; rerun to resume');
    await lock.assertHeld();
    const result = await withLockRetries('backfill', options.timing, log, (lockTimeoutMs) =>
      inTransaction(client, options.timing, lockTimeoutMs, () => client.query<{ user_id: string; case_id: string }>(BACKFILL_SQL, [after[0], after[1], options.batchSize])),
    );
    attempts += result.attempts;
    const page = result.value.rows;
    if (page.length === 0) return { rows, attempts };
    rows += page.length;
    const last = page.reduce((max, r) => (r.user_id > max.user_id || (r.user_id === max.user_id && r.case_id > max.case_id) ? r : max));
    after = [last.user_id, last.case_id];
    log.debug({ event: 'fk.backfill_batch', batch, rows: page.length });
  }
}
