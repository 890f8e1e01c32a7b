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
import { CaseguardError, ConnectionError, SchemaError, UsageError, toError } from '../errors.js';
import type { Logger } from '../logger.js';
import { describeTarget, type ConnectionTarget } from './connection.js';
import { describeParams, hostsOf, type SessionAttrs } from './connectionString.js';
import { acquireEmbedded, type EmbeddedServer } from './embedded.js';
import { destroyConnection } from './deadline.js';
import { probe, reachHost, type ServerFacts } from './hosts.js';
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
  /**
   * The command writes: a host list is searched for a read-write server unless the string's
   * target_session_attrs says otherwise.
   */
  writes?: boolean;
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
  const identity = `${options.applicationName ?? 'caseguard'} ${randomBytes(4).toString('hex')}`.slice(0, 63);
  let embedded: EmbeddedServer | undefined;
  let config: pg.ClientConfig;
  let name = describeTarget(target, env);
  let facts: ServerFacts;
  try {
    if (target.kind === 'embedded') {
      embedded = await acquireEmbedded(target.dataDir, options.log);
      name = `embedded PostgreSQL ${embedded.version} in ${embedded.dataDir} (127.0.0.1:${embedded.port})`;
      config = { connectionString: embedded.url, ssl: false, connectionTimeoutMillis: options.connectTimeoutMs ?? 10_000 };
      facts = await probe(config, identity);
    } else {
      // A command that writes looks for a read-write server among several hosts; one host is what
      // it is (a standby or read-only server is then refused, exit 2, by the command).
      const several = hostsOf(target.params).length > 1;
      const attrs = (target.params.target_session_attrs as SessionAttrs | undefined) ?? (options.writes && several ? 'read-write' : 'any');
      const reached = await reachHost(target.params, env, {
        attrs,
        applicationName: identity,
        connectTimeoutMs: options.connectTimeoutMs ?? 10_000,
      });
      config = reached.config;
      facts = reached.facts;
      if (reached.count > 1) {
        name = `${describeParams(target.params, env, reached.entry)} (from ${target.source}; host ${reached.index} of ${reached.count}, ${attrs})`;
      }
    }
  } catch (error) {
    await embedded?.release().catch(() => undefined);
    if (error instanceof CaseguardError) throw error;
    throw connectionError(error, name);
  }
  if (facts.serverVersionNum < MIN_SERVER_VERSION) {
    await embedded?.release().catch(() => undefined);
    throw new SchemaError(
      `${name} runs PostgreSQL ${Math.floor(facts.serverVersionNum / 10000)}; caseguard supports PostgreSQL 13 to 18: nothing was changed`,
    );
  }
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
  const db = drizzle({ client: pool }) as Db;
  return {
    db,
    pool,
    name,
    serverVersionNum: facts.serverVersionNum,
    readOnly: facts.standby ? 'standby' : facts.readOnly ? 'read-only' : undefined,
    identity,
    embedded,
    close: async () => {
      await endPool(pool);
      await embedded?.release();
    },
    abandon: async () => {
      await embedded?.release();
    },
  };
}

/** How long closing waits for connections still busy (a statement on a network gone silent never ends). */
const CLOSE_WAIT_MS = 5_000;

/** Ends the pool; connections still checked out after a moment are cut, so closing always ends. */
async function endPool(pool: pg.Pool): Promise<void> {
  const ended = pool.end().catch(() => undefined);
  const late = await Promise.race([ended.then(() => false), new Promise<boolean>((r) => setTimeout(() => r(true), CLOSE_WAIT_MS).unref())]);
  if (!late) return;
  // pg keeps no public list of its clients; the ones still open are cut without a word to the server
  for (const client of (pool as unknown as { _clients?: pg.ClientBase[] })._clients ?? []) destroyConnection(client);
  await Promise.race([ended, new Promise((r) => setTimeout(r, 1000).unref())]);
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
