/**
 * The quarantine: full copies of rows a run moved aside (reason, run, the whole row as jsonb).
 * Restoring puts a row back exactly as it was, through jsonb_populate_record, so it does not
 * depend on the table's column list; a row whose key is taken meanwhile is not overwritten.
 */
import { and, count, eq, gt, isNull, sql, type SQL } from 'drizzle-orm';
import type { Database, Executor, Tx } from '../db/database.js';
import { withRunLock } from '../db/locks.js';
import { ensureJournalSchema } from '../db/migrate.js';
import { describePgError, sqlStateOf } from '../db/sqlstate.js';
import { UsageError } from '../errors.js';
import { finishRun, startRun } from '../journal/journal.js';
import { quarantine } from '../schema/journal.js';

export type QuarantineTable = 'case_intake_progress' | 'case_memory' | 'bot_user_context';

/** A quarantined row as its table row says (timestamps as ISO strings). */
export type QuarantinedRow = Omit<typeof quarantine.$inferSelect, 'sourceTable' | 'rowData' | 'quarantinedAt' | 'restoredAt'> & {
  sourceTable: QuarantineTable;
  rowData: Record<string, unknown>;
  quarantinedAt: string;
  restoredAt: string | null;
};

export async function listQuarantine(
  db: Executor,
  options: { runId?: number; includeRestored: boolean; limit: number },
): Promise<{ rows: QuarantinedRow[]; total: number }> {
  const filter = and(
    options.runId === undefined ? undefined : eq(quarantine.runId, options.runId),
    options.includeRestored ? undefined : isNull(quarantine.restoredAt),
  );
  const [total] = await db.select({ n: count() }).from(quarantine).where(filter);
  const rows = await db.select().from(quarantine).where(filter).orderBy(quarantine.quarantineId).limit(options.limit);
  return { rows: rows.map(toRow), total: total?.n ?? 0 };
}

function toRow(r: typeof quarantine.$inferSelect): QuarantinedRow {
  return {
    ...r,
    sourceTable: r.sourceTable as QuarantineTable,
    rowData: r.rowData as Record<string, unknown>,
    quarantinedAt: r.quarantinedAt.toISOString(),
    restoredAt: r.restoredAt?.toISOString() ?? null,
  };
}

export interface RestoreOutcome {
  quarantineId: number;
  sourceTable: QuarantineTable;
  restored: boolean;
  /** Why a row was not restored. */
  reason?: string;
}

/** How each table's rows are keyed (a restored row is matched to its quarantine entry by key). */
const TABLES: Record<QuarantineTable, { identity: boolean; key: (row: SQL) => SQL; rowKey: SQL }> = {
  case_intake_progress: {
    identity: false,
    key: (row) => sql`jsonb_build_object('user_id', ${row}->>'user_id', 'case_id', ${row}->>'case_id')`,
    rowKey: sql`jsonb_build_object('user_id', user_id, 'case_id', case_id::text)`,
  },
  case_memory: {
    identity: true,
    key: (row) => sql`jsonb_build_object('memory_id', (${row}->>'memory_id')::bigint)`,
    rowKey: sql`jsonb_build_object('memory_id', memory_id)`,
  },
  bot_user_context: {
    identity: false,
    key: (row) => sql`jsonb_build_object('user_id', ${row}->>'user_id')`,
    rowKey: sql`jsonb_build_object('user_id', user_id)`,
  },
};

/** What a set-based restore did: exact counts, and (at most 100) the rows left out with why. */
export interface RestoreSummary {
  total: number;
  restored: number;
  notRestored: RestoreOutcome[];
  notRestoredCount: number;
}

/**
 * Puts back every row a run quarantined that is not back yet, set-based (one statement per
 * table, any number of rows), inside the caller's transaction. A row whose key is taken now is
 * left out and reported; where a table's statement fails (a value no longer fits the column),
 * that table's rows go one by one behind savepoints, each failure reported with its reason.
 */
export async function restoreAll(tx: Tx, sourceRun: number, byRun: number): Promise<RestoreSummary> {
  const summary: RestoreSummary = { total: 0, restored: 0, notRestored: [], notRestoredCount: 0 };
  for (const [name, table] of Object.entries(TABLES) as Array<[QuarantineTable, (typeof TABLES)[QuarantineTable]]>) {
    const target = sql`mega_agent.${sql.identifier(name)}`;
    let res: { total: string; restored: string };
    try {
      res = (
        await tx.transaction((sp) =>
          sp.execute<{ total: string; restored: string }>(sql`
            WITH q AS (
              SELECT quarantine_id, reason, row_data FROM caseguard.quarantine
               WHERE run_id = ${sourceRun} AND source_table = ${name} AND restored_at IS NULL
            ),
            ins AS (
              INSERT INTO ${target} ${table.identity ? sql`OVERRIDING SYSTEM VALUE` : sql``}
              SELECT (jsonb_populate_record(NULL::${target}, q.row_data)).* FROM q
              ON CONFLICT DO NOTHING
              RETURNING ${table.rowKey} AS k
            ),
            done AS (
              UPDATE caseguard.quarantine x SET restored_at = now(), restored_by_run = ${byRun}
                FROM q WHERE x.quarantine_id = q.quarantine_id AND ${table.key(sql`q.row_data`)} IN (SELECT k FROM ins)
              RETURNING x.quarantine_id, x.reason, x.row_data
            ),
            items AS (
              INSERT INTO caseguard.run_items (run_id, action, check_id, table_name, row_key, before, after)
              SELECT ${byRun}, 'restored', reason, ${name}, jsonb_build_object('quarantine_id', quarantine_id), NULL, row_data FROM done
              RETURNING 1
            )
            SELECT (SELECT count(*) FROM q) AS total, (SELECT count(*) FROM items) AS restored`),
        )
      ).rows[0]!;
    } catch (error) {
      if (!sqlStateOf(error)) throw error;
      await restoreOneByOne(tx, sourceRun, byRun, name, summary);
      continue;
    }
    summary.total += Number(res.total);
    summary.restored += Number(res.restored);
    const left = Number(res.total) - Number(res.restored);
    if (left > 0) {
      summary.notRestoredCount += left;
      const rows = await tx.execute<{ quarantine_id: string }>(sql`
        SELECT quarantine_id FROM caseguard.quarantine
         WHERE run_id = ${sourceRun} AND source_table = ${name} AND restored_at IS NULL ORDER BY quarantine_id LIMIT ${100 - summary.notRestored.length}`);
      for (const r of rows.rows)
        summary.notRestored.push({
          quarantineId: Number(r.quarantine_id),
          sourceTable: name,
          restored: false,
          reason: 'a row with the same key exists now',
        });
    }
  }
  return summary;
}

/** One row at a time behind savepoints, in pages of 1,000 by quarantine id: every row, no cap. */
async function restoreOneByOne(tx: Tx, sourceRun: number, byRun: number, table: QuarantineTable, summary: RestoreSummary): Promise<void> {
  for (let after = 0; ;) {
    const page = await tx
      .select()
      .from(quarantine)
      .where(
        and(
          eq(quarantine.runId, sourceRun),
          eq(quarantine.sourceTable, table),
          isNull(quarantine.restoredAt),
          gt(quarantine.quarantineId, after),
        ),
      )
      .orderBy(quarantine.quarantineId)
      .limit(1000);
    if (page.length === 0) return;
    for (const row of page.map(toRow)) {
      after = row.quarantineId;
      summary.total++;
      const outcome = await restoreOne(tx, row, byRun);
      if (outcome.restored) summary.restored++;
      else {
        summary.notRestoredCount++;
        if (summary.notRestored.length < 100) summary.notRestored.push(outcome);
      }
    }
  }
}

/**
 * Puts one quarantined row back, inside the caller's transaction, behind a savepoint: a row
 * that cannot go back (its key is taken, or its value no longer fits the column) is reported.
 */
export async function restoreOne(tx: Tx, row: QuarantinedRow, byRun: number): Promise<RestoreOutcome> {
  const table = Object.hasOwn(TABLES, row.sourceTable) ? TABLES[row.sourceTable] : undefined;
  if (!table)
    return { quarantineId: row.quarantineId, sourceTable: row.sourceTable, restored: false, reason: `unknown table ${row.sourceTable}` };
  const target = sql`mega_agent.${sql.identifier(row.sourceTable)}`;
  try {
    const inserted = await tx.transaction(async (sp) =>
      sp.execute(sql`
        INSERT INTO ${target} ${table.identity ? sql`OVERRIDING SYSTEM VALUE` : sql``}
        SELECT (jsonb_populate_record(NULL::${target}, ${JSON.stringify(row.rowData)}::jsonb)).*
        ON CONFLICT DO NOTHING
        RETURNING 1`),
    );
    if (inserted.rows.length === 0) {
      return {
        quarantineId: row.quarantineId,
        sourceTable: row.sourceTable,
        restored: false,
        reason: 'a row with the same key exists now',
      };
    }
  } catch (error) {
    return { quarantineId: row.quarantineId, sourceTable: row.sourceTable, restored: false, reason: describePgError(error) };
  }
  await tx.execute(
    sql`UPDATE caseguard.quarantine SET restored_at = now(), restored_by_run = ${byRun} WHERE quarantine_id = ${row.quarantineId}`,
  );
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
  /** The rows left out, with why (at most 100; notRestored is the exact count). */
  outcomes: RestoreOutcome[];
  restored: number;
  notRestored: number;
}

/** caseguard quarantine restore RUN: the rows that run quarantined and that are not back yet. */
export async function restoreRun(
  database: Database,
  sourceRun: number,
  options: {
    dryRun: boolean;
    confirm?: (count: number) => Promise<boolean>;
    signal?: AbortSignal;
    lockWaitMs?: number;
    hasJournal?: boolean;
  },
): Promise<RestoreResult> {
  const hasJournal = options.hasJournal ?? true;
  /** How many rows of the run are still quarantined; a usage error when none. */
  const pending = async (db: Executor) => {
    const waiting = hasJournal ? (await listQuarantine(db, { runId: sourceRun, includeRestored: false, limit: 0 })).total : 0;
    if (waiting === 0) {
      const any = hasJournal ? await listQuarantine(db, { runId: sourceRun, includeRestored: true, limit: 0 }) : { total: 0 };
      throw new UsageError(
        any.total > 0 ? `every row run ${sourceRun} quarantined is already restored` : `run ${sourceRun} quarantined no rows`,
      );
    }
    return waiting;
  };
  if (options.dryRun) {
    await pending(database.db);
    return { runId: null, dryRun: true, outcomes: [], restored: 0, notRestored: 0 };
  }
  return withRunLock(
    database,
    { what: 'caseguard quarantine restore', waitMs: options.lockWaitMs, signal: options.signal },
    async (lock) => {
      await ensureJournalSchema(database.pool);
      const waiting = await pending(database.db);
      const runId = await startRun(database.db, {
        command: 'quarantine restore',
        options: { run: sourceRun },
        dryRun: false,
        process: database.identity,
      });
      if (options.confirm && !(await options.confirm(waiting))) {
        await finishRun(database.db, runId, { status: 'refused', counts: { rows: waiting } });
        return { runId, dryRun: false, outcomes: [], restored: 0, notRestored: 0 };
      }
      try {
        await lock.assertHeld();
        const summary = await database.db.transaction((tx) => restoreAll(tx, sourceRun, runId));
        await finishRun(database.db, runId, {
          status: summary.notRestoredCount > 0 ? 'partial' : 'completed',
          counts: { restored: summary.restored, not_restored: summary.notRestoredCount },
        });
        return { runId, dryRun: false, outcomes: summary.notRestored, restored: summary.restored, notRestored: summary.notRestoredCount };
      } catch (error) {
        await finishRun(database.db, runId, { status: 'failed', counts: {}, error: describePgError(error) });
        throw error;
      }
    },
  );
}
