/**
 * fk: the foreign key from case_intake_progress.case_id to cases.case_id, added the way large
 * production teams add one to a live table: every step idempotent and skipped when done (a
 * rerun resumes), every lock taken with lock_timeout and retried with backoff, the constraint
 * added NOT VALID and validated in a separate transaction.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { sql } from 'drizzle-orm';
import type pg from 'pg';
import type { Database } from '../db/database.js';
import type { DatabaseShape } from '../db/inspect.js';
import { withClient, withRunLock, type RunLock } from '../db/locks.js';
import { ensureJournalSchema } from '../db/migrate.js';
import { SqlState, describePgError, sqlStateOf } from '../db/sqlstate.js';
import { BusyError, CaseguardError, ExitCode, InterruptedError } from '../errors.js';
import { finishRun, startRun } from '../journal/journal.js';
import type { Logger } from '../logger.js';
import { scan } from '../scan/scan.js';
import { readFkState, NAMES, type FkState } from './state.js';
import { BACKFILL_SQL, stepsFor, type FkStep, type Strategy } from './steps.js';

export type { Strategy } from './steps.js';

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
  steps: Array<{ id: string; title: string; done: boolean }>;
}

/**
 * How a step takes its locks: many short attempts whose lock_timeout grows, the way large teams
 * retry DDL on busy tables (GitLab's with_lock_retries). A failed attempt holds the application's
 * writers up for at most its own lock_timeout; a deadlock (40P01) is retried like a timeout.
 */
export interface FkTiming {
  /** lock_timeout of a step's first attempt, in ms; each further attempt's is 1.5 times longer. */
  lockTimeoutMs: number;
  /** The longest lock_timeout of any attempt, in ms. */
  maxLockTimeoutMs: number;
  /** How long one step keeps trying for its locks, in ms; then exit 5 with nothing of it applied. */
  retryBudgetMs: number;
  /** The most attempts per step. */
  maxAttempts: number;
  /**
   * statement_timeout of every step (PostgreSQL syntax); undefined: none, so VALIDATE and the
   * CONCURRENTLY builds take as long as the table needs (lock waits are bounded by lock_timeout).
   */
  statementTimeout?: string;
}

/** The CLI's defaults (fk add --help). */
export const DEFAULT_TIMING: FkTiming = { lockTimeoutMs: 100, maxLockTimeoutMs: 800, retryBudgetMs: 300_000, maxAttempts: 100 };

/** lock_timeout of attempt n (0-based). */
export function lockTimeoutFor(timing: FkTiming, attempt: number): number {
  return Math.min(timing.maxLockTimeoutMs, Math.round(timing.lockTimeoutMs * 1.5 ** attempt));
}

export async function fkBlockers(database: Database, shape: DatabaseShape): Promise<Blockers> {
  const report = await scan(database.db, shape, { databaseName: database.name, limit: 0, gate: { failOn: 'error', maxFindings: 0 } });
  const count = (id: string) => report.checks.find((c) => c.id === id)?.count ?? 0;
  return { orphaned_progress: count('orphaned_progress'), invalid_case_id: count('invalid_case_id'), duplicate_progress: count('duplicate_progress') };
}

export async function fkStatus(database: Database, shape: DatabaseShape, strategy: Strategy = 'online'): Promise<FkStatus> {
  const state = await readFkState(database.db);
  const blockers = await fkBlockers(database, shape);
  return {
    state,
    blockers,
    complete: state.foreignKey?.validated === true,
    steps: stepsFor(strategy, state).map((s) => ({ id: s.id, title: s.title, done: s.done(state) })),
  };
}

export interface FkPlan {
  strategy: Strategy;
  timing: FkTiming;
  state: FkState;
  steps: Array<Omit<FkStep, 'done'> & { done: boolean }>;
  /** The whole plan as one SQL script (what squawk lints). */
  script: string;
}

export function fkPlan(state: FkState, strategy: Strategy, timing: FkTiming, batchSize: number): FkPlan {
  const steps = stepsFor(strategy, state).map(({ done, ...s }) => ({ ...s, done: done(state) }));
  const lines: string[] = [
    `-- caseguard fk add --strategy ${strategy}: ${steps.filter((s) => !s.done).length} of ${steps.length} steps to run`,
    `SET lock_timeout = '${timing.lockTimeoutMs}ms';`,
    `SET statement_timeout = '${timing.statementTimeout ?? '0'}';`,
  ];
  for (const [i, step] of steps.entries()) {
    lines.push('', `-- step ${i + 1}: ${step.id}${step.done ? ' (done; skipped)' : ''}: ${step.title}`, `-- lock: ${step.lock}`, `-- meanwhile: ${step.effect}`);
    if (step.mode === 'batches') {
      lines.push(`-- repeated in transactions of ${batchSize} rows until no row is left, keyset on the primary key:`);
      lines.push(`-- ${BACKFILL_SQL.replace(/\n/g, '\n-- ')};`);
    } else if (step.mode === 'concurrent') {
      for (const statement of step.statements) lines.push(`${statement};`);
    } else {
      lines.push('BEGIN;');
      for (const [j, statement] of step.statements.entries()) {
        const suppressed = step.suppress?.[j];
        if (suppressed) lines.push(`-- on purpose: ${suppressed.reason}`, `-- squawk-ignore ${suppressed.rule}`);
        lines.push(`${statement};`);
      }
      lines.push('COMMIT;');
    }
  }
  return { strategy, timing, state, steps, script: `${lines.join('\n')}\n` };
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

function lockFailure(step: string, attempts: number, elapsedMs: number, cause: unknown): BusyError {
  return new BusyError(
    `step ${step} could not get its locks in ${attempts} attempt(s) over ${(elapsedMs / 1000).toFixed(1)} s (${describePgError(cause)}); nothing of the step was applied; rerun caseguard fk add when the application is quieter, or allow more with --lock-retry-budget`,
    { cause },
  );
}

/** A lock timeout or a deadlock: the attempt was rolled back and can be tried again. */
const retriable = (error: unknown) => sqlStateOf(error) === SqlState.lockNotAvailable || sqlStateOf(error) === SqlState.deadlockDetected;

/**
 * Runs an attempt with a growing lock_timeout, again after a pause while it fails for a lock
 * timeout or a deadlock, until the step's budget or attempts run out (then a BusyError, exit 5).
 * The attempt must leave nothing half-done when it throws.
 */
async function withLockRetries<T>(step: string, timing: FkTiming, log: Logger, attempt: (lockTimeoutMs: number) => Promise<T>): Promise<{ value: T; attempts: number }> {
  const started = performance.now();
  for (let n = 0; ; n++) {
    const lockTimeoutMs = lockTimeoutFor(timing, n);
    try {
      return { value: await attempt(lockTimeoutMs), attempts: n + 1 };
    } catch (error) {
      if (!retriable(error)) throw error;
      // A pause about as long as the attempt lets the writers queued behind it drain.
      const pause = Math.round(lockTimeoutMs * (0.5 + Math.random()));
      const next = lockTimeoutFor(timing, n + 1);
      const elapsed = performance.now() - started;
      if (n + 1 >= timing.maxAttempts || elapsed + pause + next > timing.retryBudgetMs) throw lockFailure(step, n + 1, elapsed, error);
      log.warn({ event: 'fk.lock_retry', step, attempt: n + 1, sqlstate: sqlStateOf(error), lock_timeout_ms: lockTimeoutMs, wait_ms: pause });
      await sleep(pause);
    }
  }
}

/** One transaction with lock_timeout and statement_timeout set locally; rolled back on failure. */
async function inTransaction<T>(client: pg.ClientBase, timing: FkTiming, lockTimeoutMs: number, body: () => Promise<T>): Promise<T> {
  try {
    await client.query('BEGIN');
    await client.query("SELECT set_config('lock_timeout', $1, true), set_config('statement_timeout', $2, true)", [`${lockTimeoutMs}ms`, timing.statementTimeout ?? '0']);
    const value = await body();
    await client.query('COMMIT');
    return value;
  } catch (error) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw error;
  }
}

async function runTransaction(client: pg.ClientBase, step: FkStep, timing: FkTiming, log: Logger): Promise<number> {
  const { attempts } = await withLockRetries(step.id, timing, log, (lockTimeoutMs) =>
    inTransaction(client, timing, lockTimeoutMs, async () => {
      for (const statement of step.statements) await client.query(statement);
    }),
  );
  return attempts;
}

/** CONCURRENTLY statements cannot run in a transaction: session timeouts, same retries. */
async function runConcurrent(client: pg.ClientBase, step: FkStep, timing: FkTiming, log: Logger): Promise<number> {
  try {
    // The first statement drops what a failed earlier build left (an INVALID index).
    const { attempts } = await withLockRetries(step.id, timing, log, async (lockTimeoutMs) => {
      await client.query("SELECT set_config('lock_timeout', $1, false), set_config('statement_timeout', $2, false)", [`${lockTimeoutMs}ms`, timing.statementTimeout ?? '0']);
      for (const statement of step.statements) await client.query(statement);
    });
    return attempts;
  } finally {
    await client.query('RESET lock_timeout; RESET statement_timeout').catch(() => undefined);
  }
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

export interface FkDropResult {
  runId: number;
  droppedConstraint?: string;
  revertedType: boolean;
}

/** Rollback: drop the constraint; with revertType, the column back to text (a rewrite). */
export async function fkDrop(database: Database, options: { revertType: boolean; timing: FkTiming; log: Logger; signal?: AbortSignal; lockWaitMs?: number }): Promise<FkDropResult> {
  return withRunLock(database, { what: 'caseguard fk drop', waitMs: options.lockWaitMs, signal: options.signal, log: options.log }, async (lock) => {
    await ensureJournalSchema(database.pool);
    const state = await readFkState(database.db);
    const runId = await startRun(database.db, { command: 'fk drop', options: { revertType: options.revertType }, dryRun: false, process: database.identity });
    const statements: string[] = [];
    if (state.foreignKey) {
      // cases first, as the application writes, so a writer holding cases cannot deadlock us
      statements.push('LOCK TABLE mega_agent.cases IN SHARE ROW EXCLUSIVE MODE');
      statements.push(`ALTER TABLE ${NAMES.table} DROP CONSTRAINT IF EXISTS ${state.foreignKey.name}`);
    }
    if (options.revertType && state.columnType === 'uuid') statements.push(`ALTER TABLE ${NAMES.table} ALTER COLUMN case_id TYPE text USING case_id::text`);
    try {
      if (statements.length > 0) {
        await lock.assertHeld();
        await withClient(database.pool, (client) =>
          runTransaction(client, { id: 'drop', title: 'drop', mode: 'transaction', lock: '', effect: '', statements, done: () => false }, options.timing, options.log),
        );
      }
      await finishRun(database.db, runId, { status: 'completed', counts: { statements: statements.length } });
      return { runId, droppedConstraint: state.foreignKey?.name, revertedType: options.revertType && state.columnType === 'uuid' };
    } catch (error) {
      await finishRun(database.db, runId, { status: 'failed', counts: {}, error: describePgError(error) }).catch(() => undefined);
      throw error;
    }
  });
}
