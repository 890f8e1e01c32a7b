/** Shorthands for recover tests. */
import { inspectDatabase } from '../../src/core/db/inspect.js';
import { silentLogger } from '../../src/core/logger.js';
import { recover, type RecoverOptions, type RecoverResult } from '../../src/core/recover/recover.js';
import { scan, type ScanReport } from '../../src/core/scan/scan.js';
import { tableChecksum, type TestDatabase } from './db.js';

export async function runRecover(t: TestDatabase, options: Partial<RecoverOptions> = {}): Promise<RecoverResult> {
  return recover(t.database, await inspectDatabase(t.database.db), {
    dryRun: false,
    quarantine: false,
    batchSize: 1000,
    sampleLimit: 10,
    log: silentLogger,
    ...options,
  });
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
