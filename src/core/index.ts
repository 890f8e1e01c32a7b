/**
 * caseguard's core, for the application it protects (the bot, a worker, a test suite):
 *
 *   import { openDatabase, serverTarget, inspectDatabase, scan, createIntakeHandlers } from 'caseguard';
 *
 * Everything here takes an opened Database (or its drizzle handle) and a Logger, returns typed
 * results, never prints and never exits; failures are CaseguardError subclasses carrying the
 * exit code the CLI would use.
 */
export { openDatabase, assertWritable, type Database, type Db, type Tx, type Executor, type OpenOptions } from './db/database.js';
export { serverTarget, resolveConnection, type ConnectionTarget } from './db/connection.js';
export { inspectDatabase, type DatabaseShape, type Shape } from './db/inspect.js';
export { migrate } from './db/migrate.js';

export { scan, type ScanReport, type ScanOptions, type CheckResult, type Finding, type Gate } from './scan/scan.js';
export { CHECKS, type CheckId, type Severity } from './scan/checks.js';

export { planRecovery, applyRecovery, type RecoveryPlan, type RecoverResult, type RecoverOptions } from './recover/recover.js';

export {
  fkStatus,
  fkPlan,
  fkAdd,
  fkAbort,
  fkDrop,
  DEFAULT_TIMING,
  type FkStatus,
  type FkPlan,
  type FkAddResult,
  type FkTiming,
  type ReferenceId,
  type Strategy,
} from './fk/fk.js';

export {
  createIntakeHandlers,
  COMMANDS,
  type IntakeHandlers,
  type IntakeOptions,
  type Reply,
  type Button,
  type Outcome,
  type HandlerName,
} from './intake/handlers.js';
export { ensureCase, type Guarded, type GuardedRow } from './intake/ensureCase.js';
export { keepsPreparedStatements } from './intake/session.js';

export { readSnapshot, type Snapshot, type SnapshotOptions } from './monitor/snapshot.js';
export { readFunnel, FUNNEL_STAGES, type FunnelReport, type FunnelDay, type FunnelOptions } from './monitor/funnel.js';
export { errorClassOf, safeMessage, type ErrorClass } from './db/sqlstate.js';

export { silentLogger, type Logger } from './logger.js';
export { CaseguardError, UsageError, ConnectionError, SchemaError, BusyError, BlockedError, InterruptedError, ExitCode } from './errors.js';
