/**
 * caseguard's core, for the application it protects (the bot, a worker, a test suite) and for
 * caseguard's own CLI, which imports nothing else:
 *
 *   import { openDatabase, serverTarget, inspectDatabase, scan, planRecovery, applyRecovery } from 'caseguard';
 *
 * Everything here takes an opened Database (or its drizzle handle) and a Logger, returns typed
 * results, never prints and never exits; failures are CaseguardError subclasses carrying the
 * exit code the CLI would use. Every mutating operation is a plan (read-only, with its
 * blockers) and an apply that takes the plan (see docs/ARCHITECTURE.md).
 *
 * The domain's words, used the same way in code, output and docs:
 *
 * - case: a row of mega_agent.cases, identified by a uuid (its canonical id).
 * - intake progress: a row of mega_agent.case_intake_progress: one user's position in the
 *   intake questionnaire for one case. Its case_id is text in the legacy shape.
 * - orphan: a row that references a case that does not exist (progress, memory, or a user's
 *   active-case pointer).
 * - canonical id: the lower-case hyphenated spelling of a uuid, what `uuid::text` returns.
 *   PostgreSQL accepts other spellings (upper case, braces, no hyphens, a hyphen every four
 *   digits); they name the same case.
 * - shape: legacy (progress.case_id text, no foreign key) or uuid (uuid column with the FK).
 * - check: one named integrity query; a finding is one row a check reports.
 * - run: one journaled execution of a mutating command (recover, undo, quarantine restore, fk
 *   add, fk abort, fk drop), through withJournaledRun (journal/run.ts).
 * - journal: caseguard.runs and caseguard.run_items, the record of every run and what it did.
 * - quarantine: caseguard.quarantine, full copies of rows a run moved aside; they can be restored.
 * - plan: what a mutating command would do, read without writing, with its blockers (why it
 *   cannot be applied here); apply takes the plan.
 */
export { openDatabase, assertWritable, type Database, type Db, type Tx, type Executor, type OpenOptions } from './db/database.js';
export { serverTarget, resolveConnection, hasEmbeddedDatabase, describeTarget, type ConnectionTarget } from './db/connection.js';
export { inspectDatabase, type DatabaseShape, type Shape } from './db/inspect.js';
export { migrate, migrateDatabase, type MigrateResult } from './db/migrate.js';
export { runBlockers, DEFAULT_LOCK_WAIT_MS } from './db/locks.js';
export { withinDeadline } from './db/deadline.js';

export * from './vocabulary.js';

export {
  scan,
  type ScanReport,
  type ScanOptions,
  type CheckResult,
  type Coverage,
  type Finding,
  type Gate,
  type GateVerdict,
} from './scan/scan.js';
export { installDeletionTracking, readDeletionTracking, removeDeletionTracking, type DeletionTracking } from './scan/deletions.js';

export {
  planRecovery,
  applyRecovery,
  type RecoveryPlan,
  type RecoverResult,
  type RecoverSettings,
  type ApplyOptions,
  type BatchEvent,
} from './recover/recover.js';
export { TARGET_KINDS, TARGET_KIND_INFO, isQuarantineKind, type TargetKind, type TargetSample } from './recover/targets.js';
export { constraintsRefusal, type CaseConstraints } from './recover/constraints.js';
export { planUndo, applyUndo, type UndoPlan, type UndoResult } from './recover/undo.js';
export { listQuarantine, type QuarantinedRow } from './recover/quarantine.js';
export { planRestore, applyRestore, type RestorePlan, type RestoreResult, type RestoreOutcome } from './recover/restore.js';

export {
  fkStatus,
  fkPlan,
  DEFAULT_TIMING,
  type FkStatus,
  type FkPlan,
  type ReferenceStatus,
  type Blockers,
  type FkTiming,
  type Strategy,
} from './fk/fk.js';
export {
  readFkPlan,
  planFkAdd,
  applyFkAdd,
  type FkAddPlan,
  type FkAddSettings,
  type FkAddOptions,
  type FkAddResult,
  type FkStepEvent,
} from './fk/add.js';
export {
  planFkAbort,
  applyFkAbort,
  planFkDrop,
  applyFkDrop,
  type FkAbortPlan,
  type FkAbortResult,
  type FkDropPlan,
  type FkDropResult,
} from './fk/undo.js';

export { listRuns, getRun, type RunRecord, type RunStatus, type RunItemSummary } from './journal/journal.js';
export { DEFAULT_GRACE_MS, DEFAULT_NETWORK_TIMEOUT_MS, type RunOptions } from './journal/run.js';
export { DEFAULT_THROTTLE, type ThrottleSettings } from './journal/throttle.js';
export { readHealth, canReadHealth, type Health } from './db/health.js';

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

export { simulate, type SimulateOptions, type SimulateReport } from './simulate/simulate.js';

export { readSnapshot, type Snapshot, type SnapshotOptions } from './monitor/snapshot.js';
export { startWatch, type Watcher, type WatchOptions, type WatchStarted, type WatchEnd, type Applied } from './watch/watch.js';
export {
  inspectWatch,
  planDropSlot,
  dropSlot,
  checkName,
  defaultSlot,
  DEFAULT_PUBLICATION,
  type WatchSetup,
  type SlotLag,
  type DropResult,
} from './watch/slot.js';
export { readFunnel, FUNNEL_STAGES, type FunnelReport, type FunnelDay, type FunnelOptions } from './monitor/funnel.js';
export { errorClassOf, safeMessage, SqlState, sqlStateOf, expectedServerError, type ErrorClass } from './db/sqlstate.js';

export { silentLogger, type Logger } from './logger.js';
export {
  CaseguardError,
  UsageError,
  ConnectionError,
  SchemaError,
  BusyError,
  BlockedError,
  InterruptedError,
  InternalError,
  ExitCode,
  blockerError,
  toError,
  type Blocker,
} from './errors.js';
