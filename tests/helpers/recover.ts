/** Shorthands for recover tests. */
import { inspectDatabase } from '../../src/core/db/inspect.js';
import { silentLogger } from '../../src/core/logger.js';
import { applyRestore, planRestore, type RestoreResult } from '../../src/core/recover/restore.js';
import { applyUndo, planUndo, type UndoResult } from '../../src/core/recover/undo.js';
import {
  applyRecovery,
  planRecovery,
  type ApplyOptions,
  type RecoverResult,
  type RecoverSettings,
  type RecoveryPlan,
} from '../../src/core/recover/recover.js';
import { scan, type ScanReport } from '../../src/core/scan/scan.js';
import { tableChecksum, type TestDatabase } from './db.js';

/** A real recover run as the CLI makes it with --yes: the plan (not previewed), then its apply. */
export async function runRecover(t: TestDatabase, options: Partial<RecoverSettings & ApplyOptions> = {}): Promise<RecoverResult> {
  const shape = await inspectDatabase(t.database.db);
  const { log, signal, lockWaitMs, onBatch, ...settings } = options;
  const plan = await planRecovery(
    t.database,
    shape,
    { quarantine: false, batchSize: 1000, sampleLimit: 10, ...settings },
    { preview: false },
  );
  return applyRecovery(t.database, shape, plan, { log: log ?? silentLogger, signal, lockWaitMs, onBatch });
}

/** The dry run: the plan read in one READ ONLY transaction, counts and samples included. */
export async function dryRecover(t: TestDatabase, settings: Partial<RecoverSettings> = {}): Promise<RecoveryPlan> {
  return planRecovery(t.database, await inspectDatabase(t.database.db), {
    quarantine: false,
    batchSize: 1000,
    sampleLimit: 10,
    ...settings,
  });
}

/** recover --undo RUN --yes: the plan (refused where it is not safe), then its apply. */
export async function runUndo(t: TestDatabase, runId: number, options: { signal?: AbortSignal } = {}): Promise<UndoResult> {
  const shape = await inspectDatabase(t.database.db);
  return applyUndo(t.database, shape, await planUndo(t.database, shape, runId), { log: silentLogger, ...options });
}

/** quarantine restore RUN --yes. */
export async function runRestore(t: TestDatabase, runId: number): Promise<RestoreResult> {
  const plan = await planRestore(t.database, await inspectDatabase(t.database.db), runId);
  return applyRestore(t.database, plan, { log: silentLogger });
}

export async function runScan(t: TestDatabase): Promise<ScanReport> {
  return scan(t.database.db, await inspectDatabase(t.database.db), {
    databaseName: t.name,
    limit: 100,
    gate: { failOn: 'error', maxFindings: 0 },
  });
}

/** Checksums of every application row, for "nothing changed" and "controls untouched". */
// Rows no repair may touch: the healthy controls, and the owner-mismatch pair (a warning that
// recover reports and never changes).
const UNTOUCHED = "(user_id LIKE 'control-%' OR user_id IN ('u-thief', 'owner-30'))";
export const CONTROL_WHERE = {
  'mega_agent.cases': UNTOUCHED,
  'mega_agent.case_intake_progress': UNTOUCHED,
  'mega_agent.case_memory': UNTOUCHED,
  'mega_agent.bot_user_context': UNTOUCHED,
} as const;

/** A checksum per application table: of every row ('all'), or of the rows no repair may touch. */
export async function checksums(t: TestDatabase, which: 'all' | 'controls'): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const [table, untouched] of Object.entries(CONTROL_WHERE)) {
    out[table] = await tableChecksum(t.pool, table, which === 'all' ? 'true' : untouched);
  }
  return out;
}
