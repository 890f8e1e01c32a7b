/**
 * Opening a database: a pg pool wrapped by drizzle, the redacted name of the target, and a
 * close() that releases everything in reverse order (pool, then the embedded server).
 */
import { drizzle, type NodePgDatabase } from 'drizzle-orm/node-postgres';
import type { PgTransaction } from 'drizzle-orm/pg-core';
import type { NodePgQueryResultHKT } from 'drizzle-orm/node-postgres';
import type { ExtractTablesWithRelations } from 'drizzle-orm';
import pg from 'pg';
import { randomBytes } from 'node:crypto';
import { ConnectionError, SchemaError, UsageError, toError } from '../errors.js';
import type { Logger } from '../logger.js';
import { describeTarget, type ConnectionTarget } from './connection.js';
import { tlsIsOptional, toClientConfig } from './connectionString.js';
import { acquireEmbedded, type EmbeddedServer } from './embedded.js';
import { SqlState, describePgError, safeMessage, sqlStateOf } from './sqlstate.js';

/** A drizzle handle on the pool (the pool itself is its $client). */
export type Db = NodePgDatabase<Record<string, never>> & { $client: pg.Pool };
/** A drizzle transaction. */
export type Tx = PgTransaction<NodePgQueryResultHKT, Record<string, never>, ExtractTablesWithRelations<Record<string, never>>>;
/** A drizzle handle on one checked-out connection: for work that needs its session (temporary tables). */
export type Session = NodePgDatabase<Record<string, never>> & { $client: pg.PoolClient };
/** What domain functions take: the database, a session, or a transaction within one. */
export type Executor = Db | Session | Tx;

export interface Database {
  db: Db;
  pool: pg.Pool;
  /** Printable name of the database: password redacted. */
  name: string;
  /** server_version_num, e.g. 150004. */
  serverVersionNum: number;
  /**
   * Why the server accepts no writes, when it accepts none: a hot standby, or
   * default_transaction_read_only. Commands that write refuse up front (exit 2).
   */
  readOnly?: 'standby' | 'read-only';
  /**
   * This process's identity on the server: the application_name of all its connections. A run
   * journals it, so a run whose process is gone is told apart from a live one.
   */
  identity: string;
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
  /** Connections in the pool (default 4); simulate raises it to its concurrency. A command that takes the run lock needs 3. */
  poolSize?: number;
  connectTimeoutMs?: number;
  /** Closes a connection idle this long (default 10 s); the exporter holds none between refreshes. */
  idleTimeoutMs?: number;
  /** Shown in pg_stat_activity before the process token, e.g. "caseguard recover". */
  applicationName?: string;
  /**
   * Connections that send a statement without waiting for the answer to the one before (pg's
   * pipeline mode): the intake's transactions then take two round trips. Only for pools that
   * run no cursors (simulate, bot).
   */
  pipeline?: boolean;
}

/** The oldest PostgreSQL caseguard supports (13: gen_random_uuid in core, and more). */
export const MIN_SERVER_VERSION = 130000;

/**
 * Opens a pool on the target and reads what every command needs to know first: the server
 * version (older than 13 is refused before anything is created) and whether it takes writes.
 * No startup parameter a pooler could reject is sent, and no session setting is made: what a
 * command needs it sets per transaction (SET LOCAL), so nothing lingers on a pooled connection.
 */
export async function openDatabase(target: ConnectionTarget, options: OpenOptions): Promise<Database> {
  const env = options.env ?? process.env;
  let embedded: EmbeddedServer | undefined;
  let client: pg.ClientConfig;
  let name = describeTarget(target, env);
  let tlsOptional = false;
  if (target.kind === 'embedded') {
    embedded = await acquireEmbedded(target.dataDir, options.log);
    name = `embedded PostgreSQL ${embedded.version} in ${embedded.dataDir} (127.0.0.1:${embedded.port})`;
    client = { connectionString: embedded.url, ssl: false };
  } else {
    client = toClientConfig(target.params, env);
    tlsOptional = tlsIsOptional(target.params);
  }
  const identity = `${options.applicationName ?? 'caseguard'} ${randomBytes(4).toString('hex')}`.slice(0, 63);
  const makePool = (config: pg.ClientConfig) => {
    const pool = new pg.Pool({
      ...config,
      max: options.poolSize ?? 4,
      idleTimeoutMillis: options.idleTimeoutMs ?? 10_000,
      connectionTimeoutMillis: config.connectionTimeoutMillis ?? options.connectTimeoutMs ?? 10_000,
      application_name: identity,
      pipeline: options.pipeline ?? false,
    });
    // A client that dies (server restart, pg_terminate_backend) must not crash the process: idle,
    // the pool reports it; checked out, its query fails with the reason, and the 'error' event
    // the driver emits as well has this listener.
    pool.on('error', (error) => options.log.warn({ event: 'db.idle_client_error', err: safeMessage(error) }));
    pool.on('connect', (client) => client.on('error', (error) => options.log.debug({ event: 'db.client_error', err: safeMessage(error) })));
    return pool;
  };
  let pool = makePool(client);
  const probe = () =>
    pool.query<{ v: string; standby: boolean; ro: string }>(
      "SELECT current_setting('server_version_num') AS v, pg_is_in_recovery() AS standby, current_setting('default_transaction_read_only') AS ro",
    );
  let info: { v: string; standby: boolean; ro: string };
  try {
    try {
      info = (await probe()).rows[0]!;
    } catch (error) {
      // sslmode prefer (libpq's default) and allow: a server without TLS is reached in plain text.
      if (!(tlsOptional && client.ssl && /does not support SSL/i.test(toError(error).message))) throw error;
      await pool.end().catch(() => undefined);
      pool = makePool({ ...client, ssl: false });
      info = (await probe()).rows[0]!;
    }
  } catch (error) {
    await pool.end().catch(() => undefined);
    await embedded?.release().catch(() => undefined);
    throw connectionError(error, name);
  }
  const serverVersionNum = Number(info.v);
  if (serverVersionNum < MIN_SERVER_VERSION) {
    await pool.end().catch(() => undefined);
    await embedded?.release().catch(() => undefined);
    throw new SchemaError(
      `${name} runs PostgreSQL ${Math.floor(serverVersionNum / 10000)}; caseguard supports PostgreSQL 13 to 18: nothing was changed`,
    );
  }
  const db = drizzle({ client: pool }) as Db;
  return {
    db,
    pool,
    name,
    serverVersionNum,
    readOnly: info.standby ? 'standby' : info.ro === 'on' ? 'read-only' : undefined,
    identity,
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

/** Why the server takes no writes for `what`, or undefined where it takes them. */
export function writeRefusal(database: Database, what: string): string | undefined {
  if (database.readOnly === 'standby') return `${database.name} is a hot standby (read-only): ${what} writes; run it against the primary`;
  if (database.readOnly === 'read-only') {
    return `${database.name} is read-only (default_transaction_read_only = on): ${what} writes; run it against a writable database`;
  }
  return undefined;
}

/** Refuses (exit 2) on a server that takes no writes, before the command changes anything. */
export function assertWritable(database: Database, what: string): void {
  const refusal = writeRefusal(database, what);
  if (refusal) throw new UsageError(refusal);
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
    ENOENT: 'no server socket there',
    [SqlState.invalidPassword]: 'authentication failed',
    [SqlState.invalidAuthorization]: 'not authorised',
    [SqlState.invalidCatalogName]: 'database does not exist',
    [SqlState.cannotConnectNow]: 'the server is starting up or shutting down',
    [SqlState.tooManyConnections]: 'too many connections',
    [SqlState.protocolViolation]: 'the server or pooler refused the connection',
  };
  const message = toError(error).message;
  const reason =
    (code && reasons[code]) ??
    (/timeout/i.test(message)
      ? 'connection timed out'
      : /password must be a (non-empty )?string/i.test(message)
        ? 'the server asks for a password and none was given (URL, PGPASSWORD or .pgpass)'
        : undefined);
  const detail = sqlStateOf(error) ? describePgError(error) : message;
  return new ConnectionError(`cannot connect to ${redactedName}: ${reason ? `${reason} (${scrub(detail)})` : scrub(detail)}`, {
    cause: error,
  });
}

/** Removes anything that looks like a password from a driver message. */
function scrub(text: string): string {
  return text.replace(/(postgres(?:ql)?:\/\/[^:\s/]*:)[^@\s]*@/gi, '$1***@');
}
