/**
 * Server errors: SQLSTATE codes by name (PostgreSQL Appendix A), the PostgreSQL error inside a
 * thrown value, and the one mapping from a server error to caseguard's exit codes and a
 * one-line message that says what to do next.
 *
 * Nothing here ever shows a query's parameter values or a row's values: drizzle's error text
 * holds the parameters, and the `detail` of data and integrity errors holds row values (intake
 * answers, i.e. personal data). Those are left out of every message.
 */
import type pg from 'pg';
import { BusyError, CaseguardError, ConnectionError, SchemaError, UsageError } from '../errors.js';

export const SqlState = {
  foreignKeyViolation: '23503',
  lockNotAvailable: '55P03',
  queryCanceled: '57014',
  adminShutdown: '57P01',
  crashShutdown: '57P02',
  cannotConnectNow: '57P03',
  serializationFailure: '40001',
  deadlockDetected: '40P01',
  invalidPassword: '28P01',
  invalidAuthorization: '28000',
  invalidCatalogName: '3D000',
  tooManyConnections: '53300',
  insufficientPrivilege: '42501',
  undefinedTable: '42P01',
  undefinedColumn: '42703',
  undefinedFunction: '42883',
  dependentObjectsStillExist: '2BP01',
  featureNotSupported: '0A000',
  readOnlySqlTransaction: '25006',
  protocolViolation: '08P01',
  invalidParameterValue: '22023',
} as const;

export type PgError = pg.DatabaseError & { code: string };

/**
 * The PostgreSQL error inside a thrown value: drizzle wraps driver errors (the query in its
 * message, the driver's error as its cause), so the cause chain is followed. Only errors the
 * server sent count (the driver's DatabaseError: a five-character code and a severity); a Node
 * errno such as EISDIR is no SQLSTATE. Recognised by shape, so the CLI's error handler does not
 * load the driver at start-up.
 */
export function pgErrorOf(error: unknown): PgError | undefined {
  for (let e = error, depth = 0; e && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    const { code, severity } = e as { code?: unknown; severity?: unknown };
    if (e instanceof Error && typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) && typeof severity === 'string') return e as PgError;
  }
  return undefined;
}

/** The SQLSTATE of a server error, when it is one. */
export function sqlStateOf(error: unknown): string | undefined {
  return pgErrorOf(error)?.code;
}

/**
 * A server error with its code and hint, once, on one line. The detail is left out (it holds
 * row values for integrity errors, other sessions' queries for deadlocks) except where it only
 * names schema objects: the dependents that block a DROP. Never a query parameter.
 */
export function describePgError(error: unknown): string {
  const e = pgErrorOf(error);
  if (!e) return safeMessage(error);
  const parts = [e.message.split('\n')[0]!, `(SQLSTATE ${e.code})`];
  if (e.constraint) parts.push(`constraint: ${e.constraint}`);
  if (e.table) parts.push(`table: ${e.schema ? `${e.schema}.` : ''}${e.table}`);
  if (e.column) parts.push(`column: ${e.column}`);
  if (e.detail && e.code === SqlState.dependentObjectsStillExist) parts.push(`detail: ${e.detail.replace(/\n/g, '; ')}`);
  if (e.hint) parts.push(`hint: ${e.hint}`);
  return parts.join(' ');
}

/** An error's message without drizzle's "params:" (query parameter values) or anything after it. */
export function safeMessage(error: unknown): string {
  const e = pgErrorOf(error);
  if (e) return describePgError(e);
  const message = error instanceof Error ? error.message : String(error);
  // drizzle's "Failed query: <sql>\nparams: <values>": the driver's reason is its cause.
  if (message.startsWith('Failed query:') && error instanceof Error && error.cause instanceof Error) return safeMessage(error.cause);
  return message
    .replace(/\nparams:[\s\S]*$/, '')
    .replace(/^Failed query: ([\s\S]*)$/, 'failed query: $1')
    .split('\n')[0]!;
}

/** The driver's words when a connection dies under a query, or a socket error. */
const LOST_CONNECTION =
  /Connection terminated|terminating connection|ECONNRESET|EPIPE|socket hang up|Client has encountered a connection error/i;

/** True when the error means the connection is gone (killed, server restarted, network). */
export function isConnectionLost(error: unknown): boolean {
  const code = sqlStateOf(error);
  if (code)
    return (
      code.startsWith('08') || code === SqlState.adminShutdown || code === SqlState.crashShutdown || code === SqlState.cannotConnectNow
    );
  for (let e = error, depth = 0; e && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    const errno = (e as { code?: unknown }).code;
    if (errno === 'ECONNRESET' || errno === 'EPIPE' || errno === 'ECONNREFUSED') return true;
    if (e instanceof Error && LOST_CONNECTION.test(e.message)) return true;
  }
  return false;
}

/**
 * The expected failure a server error stands for, or undefined for a genuine bug. One line with
 * the next step; the exit code follows DESIGN.md:
 *   connection, authentication, no such database, too many connections, a lost connection → 3
 *   a missing privilege → 3; a read-only server → 2
 *   a missing table, column or function, a feature the server lacks, dependent objects → 4
 *   the application's constraints and triggers rejecting a write → 4
 *   lock timeout, statement timeout, serialization failure, deadlock, out of resources → 5
 */
export function expectedServerError(error: unknown): CaseguardError | undefined {
  const e = pgErrorOf(error);
  if (!e) {
    if (isConnectionLost(error)) {
      return new ConnectionError(
        `the connection to the database was lost (${safeMessage(error)}); what was committed is kept; rerun the command`,
        { cause: error },
      );
    }
    return undefined;
  }
  const what = describePgError(e);
  const code = e.code;
  const cls = code.slice(0, 2);
  const options = { cause: error };
  if (code === SqlState.insufficientPrivilege) {
    return new ConnectionError(
      `the database user lacks a privilege this command needs: ${what}; grant it, or run as a role that has it`,
      options,
    );
  }
  if (code === SqlState.readOnlySqlTransaction) {
    return new UsageError(
      `the database is read-only (a hot standby, or default_transaction_read_only): ${what}; this command writes: run it against the primary`,
      options,
    );
  }
  if (
    cls === '08' ||
    cls === '28' ||
    code === SqlState.invalidCatalogName ||
    code === SqlState.tooManyConnections ||
    code === SqlState.adminShutdown ||
    code === SqlState.crashShutdown ||
    code === SqlState.cannotConnectNow
  ) {
    return new ConnectionError(
      `the database refused or ended the connection: ${what}; check the connection settings and the server, then rerun`,
      options,
    );
  }
  if (code === SqlState.undefinedTable || code === SqlState.undefinedColumn || code === SqlState.undefinedFunction) {
    return new SchemaError(
      `the database is not in the expected shape: ${what}; compare it with the contract in the README (caseguard migrate sets up a local or test database)`,
      [e.message],
      options,
    );
  }
  if (code === SqlState.featureNotSupported || code === SqlState.dependentObjectsStillExist) {
    return new SchemaError(`the server cannot do this on this database as it is: ${what}`, [e.message], options);
  }
  if ((cls === '23' || cls === 'P0') && e.schema === 'caseguard') {
    // caseguard's own bookkeeping, never the application's rules
    return new SchemaError(
      `caseguard's own table ${e.schema}.${e.table ?? '?'} rejected a write: ${what}; this is caseguard's journal or quarantine, not the application's constraint or trigger: what was committed before is kept; rerun, and report it if it repeats`,
      [e.message],
      options,
    );
  }
  if (cls === '23' || cls === 'P0') {
    return new SchemaError(
      `the application's constraint or trigger rejected a write: ${what}; caseguard cannot satisfy it as the database is; see "The application's constraints" in the README`,
      [e.message],
      options,
    );
  }
  if (code === SqlState.serializationFailure && /conflict with recovery/i.test(e.message)) {
    return new BusyError(
      `the standby cancelled the query for a conflict with recovery: ${what}; rerun, or set hot_standby_feedback = on (or raise max_standby_streaming_delay) on the standby`,
      options,
    );
  }
  if (code === SqlState.lockNotAvailable)
    return new BusyError(`a lock could not be had in time: ${what}; rerun when the application is quieter`, options);
  if (code === SqlState.queryCanceled)
    return new BusyError(
      `a statement was cancelled (a statement timeout or a cancel request): ${what}; rerun, or allow more time`,
      options,
    );
  if (code === SqlState.serializationFailure || code === SqlState.deadlockDetected)
    return new BusyError(`the server aborted a transaction: ${what}; rerun`, options);
  if (cls === '53') return new BusyError(`the server is out of resources: ${what}; rerun when it has room`, options);
  return undefined;
}

/** A failure's kind in one word, for a metric label or a log field: never its text. */
export type ErrorClass = 'connection' | 'privilege' | 'schema' | 'timeout' | 'conflict' | 'query' | 'internal';

const CONNECT_ERRNOS = new Set([
  'ECONNREFUSED',
  'ENOTFOUND',
  'EAI_AGAIN',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ECONNRESET',
  'ENOENT',
  'EPIPE',
]);

export function errorClassOf(error: unknown): ErrorClass {
  if (error instanceof SchemaError) return 'schema';
  if (error instanceof ConnectionError) return 'connection';
  const code = sqlStateOf(error);
  if (code === SqlState.insufficientPrivilege) return 'privilege';
  if (code === SqlState.queryCanceled || code === SqlState.lockNotAvailable) return 'timeout';
  if (code === SqlState.serializationFailure || code === SqlState.deadlockDetected) return 'conflict';
  if (code) {
    const expected = expectedServerError(error);
    if (expected instanceof ConnectionError) return 'connection';
    if (expected instanceof SchemaError) return 'schema';
    return 'query';
  }
  for (let e = error, depth = 0; e && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    const errno = (e as { code?: unknown }).code;
    if (typeof errno === 'string' && CONNECT_ERRNOS.has(errno)) return 'connection';
    if (e instanceof Error && /timeout exceeded when trying to connect|connection timeout/i.test(e.message)) return 'connection';
  }
  return isConnectionLost(error) ? 'connection' : 'internal';
}
