/**
 * Opening a database: a pg pool wrapped by drizzle, the redacted name of the target, and a
 * close() that releases everything in reverse order (pool, then the embedded server).
 */
import { drizzle, type NodePgDatabase } from 'drizzle-orm/node-postgres';
import type { PgTransaction } from 'drizzle-orm/pg-core';
import type { NodePgQueryResultHKT } from 'drizzle-orm/node-postgres';
import type { ExtractTablesWithRelations } from 'drizzle-orm';
import pg from 'pg';
import { ConnectionError, toError } from '../errors.js';
import type { Logger } from '../logger.js';
import { describeTarget, redactUrl, type ConnectionTarget } from './connection.js';
import { acquireEmbedded, type EmbeddedServer } from './embedded.js';
import { SqlState, describePgError, sqlStateOf } from './sqlstate.js';

/** A drizzle handle on the pool. */
export type Db = NodePgDatabase<Record<string, never>>;
/** A drizzle transaction. */
export type Tx = PgTransaction<NodePgQueryResultHKT, Record<string, never>, ExtractTablesWithRelations<Record<string, never>>>;
/** What domain functions take: the database or a transaction within it. */
export type Executor = Db | Tx;

export interface Database {
  db: Db;
  pool: pg.Pool;
  /** Printable name of the database: password redacted. */
  name: string;
  /** server_version_num, e.g. 150004. */
  serverVersionNum: number;
  embedded?: EmbeddedServer;
  close(): Promise<void>;
  /**
   * For a process about to exit on a signal: lets go of the embedded server without waiting for
   * running queries (the server notices the closed connections).
   */
  abandon(): Promise<void>;
}

export interface OpenOptions {
  log: Logger;
  env?: NodeJS.ProcessEnv;
  /** Connections in the pool; simulate raises it to its concurrency. */
  poolSize?: number;
  connectTimeoutMs?: number;
  applicationName?: string;
}

export async function openDatabase(target: ConnectionTarget, options: OpenOptions): Promise<Database> {
  const env = options.env ?? process.env;
  let embedded: EmbeddedServer | undefined;
  let config: pg.PoolConfig;
  let name = describeTarget(target, env);
  if (target.kind === 'embedded') {
    embedded = await acquireEmbedded(target.dataDir, options.log);
    name = `embedded PostgreSQL ${embedded.version} in ${embedded.dataDir} (127.0.0.1:${embedded.port})`;
    config = { connectionString: embedded.url };
  } else if (target.kind === 'url') {
    config = { connectionString: target.url };
  } else {
    config = {};
  }
  const pool = new pg.Pool({
    ...config,
    max: options.poolSize ?? 4,
    connectionTimeoutMillis: options.connectTimeoutMs ?? 10_000,
    application_name: options.applicationName ?? 'caseguard',
  });
  // An idle client that dies (server restart, pg_terminate_backend) must not crash the process.
  pool.on('error', (error) => options.log.warn({ event: 'db.idle_client_error', err: toError(error).message }));

  let serverVersionNum: number;
  try {
    const result = await pool.query<{ v: string }>("SELECT current_setting('server_version_num') AS v");
    serverVersionNum = Number(result.rows[0]?.v);
  } catch (error) {
    await pool.end().catch(() => undefined);
    await embedded?.release().catch(() => undefined);
    throw connectionError(error, target.kind === 'url' ? redactUrl(target.url) : name);
  }
  // PostgreSQL 14+ can notice a client that went away while its query still runs (a CLI killed
  // mid-scan): ask for that on every connection, so nothing of ours lingers on the server. New
  // connections get it as a startup option; the one already open gets a SET.
  if (serverVersionNum >= 140000) {
    (pool.options as pg.PoolConfig).options = '-c client_connection_check_interval=2000';
    await pool.query("SET client_connection_check_interval = '2s'").catch(() => undefined);
  }
  const db = drizzle({ client: pool }) as Db;
  return {
    db,
    pool,
    name,
    serverVersionNum,
    embedded,
    close: async () => {
      await pool.end().catch(() => undefined);
      await embedded?.release();
    },
    abandon: async () => {
      await embedded?.release();
    },
  };
}

/** One line saying why the connection failed, naming the redacted target; never the password. */
export function connectionError(error: unknown, redactedName: string): ConnectionError {
  const code = sqlStateOf(error) ?? (error as { code?: string }).code;
  const reasons: Record<string, string> = {
    ECONNREFUSED: 'connection refused',
    ENOTFOUND: 'host not found',
    EAI_AGAIN: 'host name lookup failed',
    ETIMEDOUT: 'connection timed out',
    EHOSTUNREACH: 'host unreachable',
    ECONNRESET: 'connection reset',
    [SqlState.invalidPassword]: 'authentication failed',
    [SqlState.invalidAuthorization]: 'not authorised',
    [SqlState.invalidCatalogName]: 'database does not exist',
    [SqlState.cannotConnectNow]: 'the server is starting up or shutting down',
  };
  const message = toError(error).message;
  const reason = (code && reasons[code]) ?? (/timeout/i.test(message) ? 'connection timed out' : undefined);
  const detail = sqlStateOf(error) ? describePgError(error) : message;
  return new ConnectionError(
    `cannot connect to ${redactedName}: ${reason ? `${reason} (${scrub(detail)})` : scrub(detail)}`,
    { cause: error },
  );
}

/** Removes anything that looks like a password from a driver message. */
function scrub(text: string): string {
  return text.replace(/(postgres(?:ql)?:\/\/[^:\s/]*:)[^@\s]*@/gi, '$1***@');
}
