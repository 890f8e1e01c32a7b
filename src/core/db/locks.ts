/**
 * The run lock: one session advisory lock that every command that changes data takes (recover,
 * undo, quarantine restore, fk add/drop, migrate), so they exclude each other. Advisory locks
 * live in one database, so the lock is per database, and so is the holder lookup.
 *
 * A session lock needs a session that stays put: runBlockers says where it cannot hold (a
 * read-only server, or a transaction pooler that would hand the lock's server connection to
 * someone else), and plans carry that. withRunLock waits a bounded time for a
 * holder, polling so that SIGINT is honoured, and hands the command a RunLock whose
 * assertHeld() is called before every write: a run whose lock session died stops there.
 */
import { drizzle } from 'drizzle-orm/node-postgres';
import { setTimeout as sleep } from 'node:timers/promises';
import type pg from 'pg';
import { BusyError, ConnectionError, ExitCode, InterruptedError, type Blocker } from '../errors.js';
import type { Logger } from '../logger.js';
import { writeRefusal, type Database, type Session } from './database.js';
import { destroyConnection, withinDeadline } from './deadline.js';
import { isConnectionLost, safeMessage } from './sqlstate.js';

export { destroyConnection, withinDeadline } from './deadline.js';

/** First half of every caseguard advisory lock key ('cg'). */
const NAMESPACE = 0x6367;

/** The one run lock (the key recover always used, so older versions' runs exclude too). */
export const RUN_LOCK = [NAMESPACE, 2] as const;

/** Namespace for per-user intake locks: pg_advisory_xact_lock(INTAKE_USER_LOCK, hashtext(user_id)). */
export const INTAKE_USER_LOCK = NAMESPACE + 1;

/** How long a command waits for the run lock by default. */
export const DEFAULT_LOCK_WAIT_MS = 5_000;
const POLL_MS = 200;

export async function withClient<T>(pool: pg.Pool, fn: (client: pg.PoolClient) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  let broken: Error | undefined;
  // A checked-out client that dies between queries (pg_terminate_backend, a server restart)
  // emits 'error'; without a listener that would crash the process.
  const onError = (error: Error) => {
    broken = error;
  };
  client.on('error', onError);
  try {
    return await fn(client);
  } catch (error) {
    // A connection whose state is unknown (killed mid-query) must not go back to the pool.
    if (isConnectionLost(error)) {
      broken = error as Error;
    }
    throw error;
  } finally {
    client.removeListener('error', onError);
    client.release(broken);
  }
}

/** fn on one checked-out connection through drizzle: work that needs its session (a temporary table). */
export async function withSession<T>(pool: pg.Pool, fn: (session: Session) => Promise<T>): Promise<T> {
  return withClient(pool, (client) => fn(drizzle({ client }) as Session));
}

interface Holder {
  pid: number;
  application_name: string | null;
  usename: string | null;
}

/** Who holds the run lock in this database (pg_locks and pg_stat_activity: any role reads them). */
async function lockHolder(client: pg.ClientBase): Promise<string> {
  const result = await client.query<Holder>(
    `SELECT l.pid, a.application_name, a.usename
       FROM pg_locks l LEFT JOIN pg_stat_activity a ON a.pid = l.pid
      WHERE l.locktype = 'advisory' AND l.granted AND l.classid = $1 AND l.objid = $2 AND l.objsubid = 2
        AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())`,
    [RUN_LOCK[0], RUN_LOCK[1]],
  );
  const h = result.rows[0];
  return h ? `${h.application_name || 'a session'} (pid ${h.pid}${h.usename ? `, user ${h.usename}` : ''})` : 'another session';
}

export interface AcquireOptions {
  /** What is waiting, for messages: "caseguard recover". */
  what: string;
  /** How long to wait for a holder; 0 tries once. */
  waitMs?: number;
  signal?: AbortSignal;
  log?: Logger;
}

/** Takes the run lock on this session, waiting at most waitMs; BusyError names the holder. */
export async function acquireRunLock(client: pg.ClientBase, options: AcquireOptions): Promise<void> {
  const waitMs = options.waitMs ?? DEFAULT_LOCK_WAIT_MS;
  const deadline = performance.now() + waitMs;
  for (let attempt = 0; ; attempt++) {
    const got = await client.query<{ ok: boolean }>('SELECT pg_try_advisory_lock($1, $2) AS ok', [RUN_LOCK[0], RUN_LOCK[1]]);
    if (got.rows[0]?.ok) return;
    if (attempt === 0) {
      options.log?.info(
        { event: 'run_lock.waiting', holder: await lockHolder(client), wait_ms: waitMs },
        `waiting up to ${waitMs / 1000}s for the run lock`,
      );
    }
    if (performance.now() >= deadline) {
      throw new BusyError(
        `${options.what} cannot start: ${await lockHolder(client)} holds caseguard's run lock (another recover, undo, restore, fk or migrate); try again when it ends`,
      );
    }
    if (options.signal?.aborted)
      throw new InterruptedError(`${options.what} interrupted while waiting for the run lock; nothing was changed`);
    await sleep(Math.min(POLL_MS, Math.max(1, deadline - performance.now())), undefined, { signal: options.signal }).catch(() => undefined);
  }
}

export async function releaseRunLock(client: pg.ClientBase): Promise<void> {
  await client.query('SELECT pg_advisory_unlock($1, $2)', [RUN_LOCK[0], RUN_LOCK[1]]);
}

/**
 * Whether the connections go through a transaction pooler: two clients of one pool that see
 * one server backend, or one client that sees two, cannot be direct (or session-pooled)
 * connections. Client b holds a transaction while a asks again, so a pooler must move a.
 */
export async function detectTransactionPooling(pool: pg.Pool, a: pg.ClientBase): Promise<boolean> {
  const pid = async (c: pg.ClientBase) => Number((await c.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid);
  const first = await pid(a);
  const b = await pool.connect();
  try {
    try {
      await b.query('BEGIN');
    } catch (error) {
      if (/pooling mode/i.test(safeMessage(error))) return true; // statement pooling refuses transactions
      throw error;
    }
    const other = await pid(b);
    const again = await pid(a);
    return other === first || again !== first;
  } finally {
    await b.query('ROLLBACK').catch(() => undefined);
    b.release();
  }
}

export interface RunLock {
  /** Throws ConnectionError (exit 3) when the lock's session is gone; call before every write. */
  assertHeld(deadlineMs?: number): Promise<void>;
  /** Cuts the lock's session without a word (a stop on a network gone silent): the lock goes with it. */
  cut(): void;
}

/** Connections a run holds at once: the run lock's session, the run's own session, and one for the journal. */
export const RUN_POOL_SIZE = 3;

/**
 * Why a run could not hold the run lock here, read once while planning: a read-only server, a
 * transaction pooler (it would hand the lock's server connection to someone else), or a pool
 * too small for a run's connections. Each refuses with exit 2.
 */
export async function runBlockers(database: Database, what: string): Promise<Blocker[]> {
  const blockers: Blocker[] = [];
  const refusal = writeRefusal(database, what);
  if (refusal) blockers.push({ reason: refusal, exitCode: ExitCode.usage });
  if ((database.pool.options.max ?? 10) < RUN_POOL_SIZE) {
    blockers.push({
      reason: `${what} needs a pool of at least ${RUN_POOL_SIZE} connections (poolSize); nothing was changed`,
      exitCode: ExitCode.usage,
    });
    return blockers;
  }
  const client = await database.pool.connect();
  try {
    if (await detectTransactionPooling(database.pool, client)) {
      blockers.push({
        reason: `${database.name} goes through a transaction pooler (e.g. PgBouncer pool_mode=transaction): ${what} needs a session lock; use a direct or session-pooled URL (scan, simulate and bot work through it)`,
        exitCode: ExitCode.usage,
      });
    }
  } finally {
    client.release();
  }
  return blockers;
}

/**
 * Runs fn holding the run lock (the caller has checked runBlockers): waits for a holder at most
 * waitMs (exit 5 after); releases in finally.
 */
export async function withRunLock<T>(database: Database, options: AcquireOptions, fn: (lock: RunLock) => Promise<T>): Promise<T> {
  const client = await database.pool.connect();
  let lost: Error | undefined;
  const onError = (error: Error) => {
    lost ??= error;
  };
  client.on('error', onError);
  let held = false;
  try {
    await acquireRunLock(client, options);
    held = true;
    const lock: RunLock = {
      cut: () => {
        lost ??= new Error('the run lock session was cut');
        destroyConnection(client);
      },
      assertHeld: async (deadlineMs?: number) => {
        let still = false;
        try {
          if (!lost) {
            const check = client.query<{ held: boolean }>(
              `SELECT EXISTS (SELECT 1 FROM pg_locks WHERE pid = pg_backend_pid() AND locktype = 'advisory' AND granted
                              AND classid = $1 AND objid = $2 AND objsubid = 2) AS held`,
              [RUN_LOCK[0], RUN_LOCK[1]],
            );
            const r =
              deadlineMs === undefined
                ? await check
                : await withinDeadline(check, deadlineMs, () => {
                    lost ??= new Error(`no answer within ${Math.round(deadlineMs / 1000)}s: the connection went silent`);
                    destroyConnection(client);
                  });
            still = r.rows[0]?.held === true;
          }
        } catch (error) {
          lost ??= error as Error;
        }
        if (!still) {
          held = false;
          throw new ConnectionError(`the session holding caseguard's run lock was lost${lost ? ` (${safeMessage(lost)})` : ''}`, {
            cause: lost,
          });
        }
      },
    };
    return await fn(lock);
  } finally {
    // A connection that lost its session, or whose unlock failed, is destroyed, never pooled.
    let destroy = lost;
    if (held && !lost) await releaseRunLock(client).catch((error: unknown) => (destroy = error as Error));
    client.removeListener('error', onError);
    client.release(destroy);
  }
}
