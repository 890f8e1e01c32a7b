/**
 * How fk steps take their locks: many short attempts whose lock_timeout grows, a pause between
 * them, deadlocks retried like timeouts, the whole bounded by a budget per step; each attempt in
 * a transaction that leaves nothing half-done when it fails.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type pg from 'pg';
import { SqlState, describePgError, sqlStateOf } from '../db/sqlstate.js';
import { BusyError } from '../errors.js';
import type { Logger } from '../logger.js';
import type { FkStep } from './steps.js';

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
export async function withLockRetries<T>(
  step: string,
  timing: FkTiming,
  log: Logger,
  attempt: (lockTimeoutMs: number) => Promise<T>,
): Promise<{ value: T; attempts: number }> {
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
      log.warn({
        event: 'fk.lock_retry',
        step,
        attempt: n + 1,
        sqlstate: sqlStateOf(error),
        lock_timeout_ms: lockTimeoutMs,
        wait_ms: pause,
      });
      await sleep(pause);
    }
  }
}

/** One transaction with lock_timeout and statement_timeout set locally; rolled back on failure. */
export async function inTransaction<T>(client: pg.ClientBase, timing: FkTiming, lockTimeoutMs: number, body: () => Promise<T>): Promise<T> {
  try {
    await client.query('BEGIN');
    await client.query("SELECT set_config('lock_timeout', $1, true), set_config('statement_timeout', $2, true)", [
      `${lockTimeoutMs}ms`,
      timing.statementTimeout ?? '0',
    ]);
    const value = await body();
    await client.query('COMMIT');
    return value;
  } catch (error) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw error;
  }
}

export async function runTransaction(
  client: pg.ClientBase,
  step: Pick<FkStep, 'id' | 'statements'>,
  timing: FkTiming,
  log: Logger,
): Promise<number> {
  const { attempts } = await withLockRetries(step.id, timing, log, (lockTimeoutMs) =>
    inTransaction(client, timing, lockTimeoutMs, async () => {
      for (const statement of step.statements) await client.query(statement);
    }),
  );
  return attempts;
}

/**
 * CONCURRENTLY statements cannot run in a transaction, and are not retried on short lock
 * timeouts: the build's table lock (SHARE UPDATE EXCLUSIVE) makes no writer wait, and after it
 * the build waits for every transaction older than its snapshots, a wait PostgreSQL counts
 * against lock_timeout. Short attempts would rebuild the whole index on each retry behind one
 * long transaction; so one attempt waits up to the step's budget (--lock-retry-budget), then
 * exit 5 (the INVALID index it leaves is dropped by the next run's first statement).
 */
export async function runConcurrent(
  client: pg.ClientBase,
  step: Pick<FkStep, 'id' | 'statements'>,
  timing: FkTiming,
  log: Logger,
): Promise<number> {
  const started = performance.now();
  try {
    await client.query("SELECT set_config('lock_timeout', $1, false), set_config('statement_timeout', $2, false)", [
      `${Math.round(timing.retryBudgetMs)}ms`,
      timing.statementTimeout ?? '0',
    ]);
    try {
      // The first statement drops what a failed earlier build left (an INVALID index).
      for (const statement of step.statements) await client.query(statement);
    } catch (error) {
      if (!retriable(error)) throw error;
      log.warn({
        event: 'fk.lock_retry',
        step: step.id,
        attempt: 1,
        sqlstate: sqlStateOf(error),
        lock_timeout_ms: timing.retryBudgetMs,
        wait_ms: 0,
      });
      throw lockFailure(step.id, 1, performance.now() - started, error);
    }
    return 1;
  } finally {
    await client.query('RESET lock_timeout; RESET statement_timeout').catch(() => undefined);
  }
}
