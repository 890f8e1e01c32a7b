/**
 * Advisory locks: which keys caseguard uses, and helpers that always release in finally.
 * Session locks need one dedicated connection, so the helpers check a client out of the pool.
 */
import type pg from 'pg';
import { BusyError } from '../errors.js';

/** First half of every caseguard advisory lock key ('cg'). */
const NAMESPACE = 0x6367;

export const LockKey = {
  migrate: [NAMESPACE, 1],
  recover: [NAMESPACE, 2],
  fk: [NAMESPACE, 3],
} as const satisfies Record<string, readonly [number, number]>;

/** Namespace for per-user intake locks: pg_advisory_xact_lock(INTAKE_USER_LOCK, hashtext(user_id)). */
export const INTAKE_USER_LOCK = NAMESPACE + 1;

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
    if ((error as { code?: string }).code === '57P01' || (error as Error).message?.includes('terminat')) {
      broken = error as Error;
    }
    throw error;
  } finally {
    client.removeListener('error', onError);
    client.release(broken);
  }
}

/** Waits for the session lock, runs fn, releases it. */
export async function withAdvisoryLock<T>(
  client: pg.ClientBase,
  key: readonly [number, number],
  fn: () => Promise<T>,
): Promise<T> {
  await client.query('SELECT pg_advisory_lock($1, $2)', [key[0], key[1]]);
  try {
    return await fn();
  } finally {
    await client.query('SELECT pg_advisory_unlock($1, $2)', [key[0], key[1]]).catch(() => undefined);
  }
}

/**
 * Tries the session lock once; when another session holds it, fails with BusyError naming the
 * holder (application name, user, pid and since when), so the user knows whom to ask.
 */
export async function withTryAdvisoryLock<T>(
  client: pg.ClientBase,
  key: readonly [number, number],
  what: string,
  fn: () => Promise<T>,
): Promise<T> {
  const got = await client.query<{ ok: boolean }>('SELECT pg_try_advisory_lock($1, $2) AS ok', [key[0], key[1]]);
  if (!got.rows[0]?.ok) {
    const holder = await client.query<{ pid: number; usename: string; application_name: string; backend_start: Date }>(
      `SELECT a.pid, a.usename, a.application_name, a.backend_start
         FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
        WHERE l.locktype = 'advisory' AND l.classid = $1 AND l.objid = $2 AND l.objsubid = 2 AND l.granted`,
      [key[0], key[1]],
    );
    const h = holder.rows[0];
    const who = h
      ? `${h.application_name || 'a session'} (user ${h.usename}, pid ${h.pid}, connected ${h.backend_start.toISOString()})`
      : 'another session';
    throw new BusyError(`another ${what} is running: ${who} holds the lock; try again when it ends`);
  }
  try {
    return await fn();
  } finally {
    await client.query('SELECT pg_advisory_unlock($1, $2)', [key[0], key[1]]).catch(() => undefined);
  }
}
