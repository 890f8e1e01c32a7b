/**
 * The quarantine: full copies of rows a run moved aside (reason, run, the whole row as jsonb).
 * Restoring puts a row back exactly as it was, through jsonb_populate_record, so it does not
 * depend on the table's column list; a row whose key is taken meanwhile is not overwritten.
 */
import { sql } from 'drizzle-orm';
import type { Database, Executor, Tx } from '../db/database.js';
import { withRunLock } from '../db/locks.js';
import { ensureJournalSchema } from '../db/migrate.js';
import { describePgError } from '../db/sqlstate.js';
import { UsageError } from '../errors.js';
import { finishRun, startRun } from '../journal/journal.js';

export type QuarantineTable = 'case_intake_progress' | 'case_memory' | 'bot_user_context';

export interface QuarantinedRow {
  quarantineId: number;
  runId: number;
  sourceTable: QuarantineTable;
  reason: string;
  rowData: Record<string, unknown>;
  quarantinedAt: string;
  restoredAt: string | null;
  restoredByRun: number | null;
}

export async function listQuarantine(
  db: Executor,
  options: { runId?: number; includeRestored: boolean; limit: number },
): Promise<{ rows: QuarantinedRow[]; total: number }> {
  const filter = sql`(${options.runId ?? null}::bigint IS NULL OR run_id = ${options.runId ?? null}::bigint)
                     AND (${options.includeRestored} OR restored_at IS NULL)`;
  const total = await db.execute<{ n: string }>(sql`SELECT count(*) AS n FROM caseguard.quarantine WHERE ${filter}`);
  const rows = await db.execute(sql`
    SELECT quarantine_id, run_id, source_table, reason, row_data, quarantined_at, restored_at, restored_by_run
      FROM caseguard.quarantine WHERE ${filter} ORDER BY quarantine_id LIMIT ${options.limit}`);
  return { rows: rows.rows.map(toRow), total: Number(total.rows[0]?.n ?? 0) };
}

function toRow(r: Record<string, unknown>): QuarantinedRow {
  return {
    quarantineId: Number(r.quarantine_id),
    runId: Number(r.run_id),
    sourceTable: r.source_table as QuarantineTable,
    reason: String(r.reason),
    rowData: r.row_data as Record<string, unknown>,
    quarantinedAt: new Date(r.quarantined_at as string).toISOString(),
    restoredAt: r.restored_at ? new Date(r.restored_at as string).toISOString() : null,
    restoredByRun: r.restored_by_run === null ? null : Number(r.restored_by_run),
  };
}

export interface RestoreOutcome {
  quarantineId: number;
  sourceTable: QuarantineTable;
  restored: boolean;
  /** Why a row was not restored. */
  reason?: string;
}

const TABLES: Record<QuarantineTable, { identity: boolean }> = {
  case_intake_progress: { identity: false },
  case_memory: { identity: true },
  bot_user_context: { identity: false },
};

/**
 * Puts one quarantined row back, inside the caller's transaction, behind a savepoint: a row
 * that cannot go back (its key is taken, or its value no longer fits the column) is reported.
 */
export async function restoreOne(tx: Tx, row: QuarantinedRow, byRun: number): Promise<RestoreOutcome> {
  const table = TABLES[row.sourceTable];
  if (!table) return { quarantineId: row.quarantineId, sourceTable: row.sourceTable, restored: false, reason: `unknown table ${row.sourceTable}` };
  const target = sql.raw(`mega_agent.${row.sourceTable}`);
  try {
    const inserted = await tx.transaction(async (sp) =>
      sp.execute(sql`
        INSERT INTO ${target} ${table.identity ? sql`OVERRIDING SYSTEM VALUE` : sql``}
        SELECT (jsonb_populate_record(NULL::${target}, ${JSON.stringify(row.rowData)}::jsonb)).*
        ON CONFLICT DO NOTHING
        RETURNING 1`),
    );
    if (inserted.rows.length === 0) {
      return { quarantineId: row.quarantineId, sourceTable: row.sourceTable, restored: false, reason: 'a row with the same key exists now' };
    }
  } catch (error) {
    return { quarantineId: row.quarantineId, sourceTable: row.sourceTable, restored: false, reason: describePgError(error) };
  }
  await tx.execute(sql`UPDATE caseguard.quarantine SET restored_at = now(), restored_by_run = ${byRun} WHERE quarantine_id = ${row.quarantineId}`);
  await tx.execute(sql`
    INSERT INTO caseguard.run_items (run_id, action, check_id, table_name, row_key, before, after)
    VALUES (${byRun}, 'restored', ${row.reason}, ${row.sourceTable}, ${JSON.stringify({ quarantine_id: row.quarantineId })}::jsonb, NULL,
            ${JSON.stringify(row.rowData)}::jsonb)`);
  return { quarantineId: row.quarantineId, sourceTable: row.sourceTable, restored: true };
}

export interface RestoreResult {
  /** The restore's own run; null for a dry run, which journals nothing. */
  runId: number | null;
  dryRun: boolean;
  outcomes: RestoreOutcome[];
  restored: number;
  notRestored: number;
}

/** caseguard quarantine restore RUN: the rows that run quarantined and that are not back yet. */
export async function restoreRun(
  database: Database,
  sourceRun: number,
  options: { dryRun: boolean; confirm?: (count: number) => Promise<boolean>; signal?: AbortSignal; lockWaitMs?: number; hasJournal?: boolean },
): Promise<RestoreResult> {
  const hasJournal = options.hasJournal ?? true;
  const pending = async (db: Executor) => {
    const { rows } = hasJournal ? await listQuarantine(db, { runId: sourceRun, includeRestored: false, limit: 1_000_000 }) : { rows: [] };
    if (rows.length === 0) {
      const any = hasJournal ? await listQuarantine(db, { runId: sourceRun, includeRestored: true, limit: 1 }) : { total: 0 };
      throw new UsageError(any.total > 0 ? `every row run ${sourceRun} quarantined is already restored` : `run ${sourceRun} quarantined no rows`);
    }
    return rows;
  };
  if (options.dryRun) {
    await pending(database.db);
    return { runId: null, dryRun: true, outcomes: [], restored: 0, notRestored: 0 };
  }
  return withRunLock(database, { what: 'caseguard quarantine restore', waitMs: options.lockWaitMs, signal: options.signal }, async (lock) => {
    await ensureJournalSchema(database.pool);
    const rows = await pending(database.db);
    const runId = await startRun(database.db, { command: 'quarantine restore', options: { run: sourceRun }, dryRun: false, process: database.identity });
    if (options.confirm && !(await options.confirm(rows.length))) {
      await finishRun(database.db, runId, { status: 'refused', counts: { rows: rows.length } });
      return { runId, dryRun: false, outcomes: [], restored: 0, notRestored: 0 };
    }
    try {
      await lock.assertHeld();
      const outcomes = await database.db.transaction(async (tx) => {
        const out: RestoreOutcome[] = [];
        for (const row of rows) out.push(await restoreOne(tx, row, runId));
        return out;
      });
      const restored = outcomes.filter((o) => o.restored).length;
      await finishRun(database.db, runId, { status: 'completed', counts: { restored, not_restored: outcomes.length - restored } });
      return { runId, dryRun: false, outcomes, restored, notRestored: outcomes.length - restored };
    } catch (error) {
      await finishRun(database.db, runId, { status: 'failed', counts: {}, error: describePgError(error) });
      throw error;
    }
  });
}
