/**
 * What the exporter serves, read in one READ ONLY, REPEATABLE READ transaction: the shape, the
 * seven checks (the numbers scan reports), the recoveries and the intake funnel all describe the
 * same moment. Works for a role with only USAGE and SELECT, and on a standby. Fed by caseguard
 * watch, the checks come from what it holds, and only the funnel and recoveries are read.
 */
import { sql } from 'drizzle-orm';
import type { Db } from '../db/database.js';
import { inspectDatabase } from '../db/inspect.js';
import { checksIn, type ScanReport } from '../scan/scan.js';
import { readFunnel, type FunnelReport } from './funnel.js';
import { readRecoveries, type RecoveryReport } from './recoveries.js';

export interface SnapshotOptions {
  databaseName: string;
  /** Funnel and recoveries by day over this many days, today (UTC) included. */
  days: number;
  abandonedAfterMs: number;
  /** statement_timeout of every query, PostgreSQL syntax ('30s'); '0' for none. */
  statementTimeout: string;
  /** The checks as caseguard watch holds them: they are then not read. */
  checks?: () => ScanReport;
}

export interface Snapshot {
  scan: ScanReport;
  funnel: FunnelReport;
  recoveries: RecoveryReport;
  durationMs: number;
}

export async function readSnapshot(db: Db, options: SnapshotOptions): Promise<Snapshot> {
  const t0 = performance.now();
  return db.transaction(
    async (tx) => {
      await tx.execute(sql`SELECT set_config('statement_timeout', ${options.statementTimeout}, true)`);
      const shape = await inspectDatabase(tx);
      const scan = options.checks
        ? options.checks()
        : await checksIn(tx, shape, { databaseName: options.databaseName, limit: 0, gate: { failOn: 'error', maxFindings: 0 } });
      const funnel = await readFunnel(tx, { days: options.days, abandonedAfterMs: options.abandonedAfterMs });
      const recoveries = await readRecoveries(tx, { days: options.days, journal: shape.hasJournal });
      return { scan, funnel, recoveries, durationMs: Math.round(performance.now() - t0) };
    },
    { isolationLevel: 'repeatable read', accessMode: 'read only' },
  );
}
