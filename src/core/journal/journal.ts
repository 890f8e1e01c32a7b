/**
 * The run journal: every mutating run gets a row in caseguard.runs, and every row it created,
 * changed or quarantined a row in caseguard.run_items (written by the same statement that does
 * the change, so the record is exact). Runs go through withJournaledRun (run.ts).
 */
import os from 'node:os';
import { and, count, desc, eq, getTableColumns, not, sql, type SQL } from 'drizzle-orm';
import type { Executor } from '../db/database.js';
import { BusyError } from '../errors.js';
import { runItems, runs } from '../schema/journal.js';

/** 'abandoned': journaled as running, but its process has no session left (it died). */
export type RunStatus = 'running' | 'completed' | 'partial' | 'interrupted' | 'failed' | 'refused' | 'abandoned';

type RunRow = typeof runs.$inferSelect;

/** A journaled run as its table row says (timestamps as ISO strings), dead runs shown abandoned. */
export type RunRecord = Omit<RunRow, 'process' | 'status' | 'options' | 'counts' | 'startedAt' | 'finishedAt'> & {
  options: Record<string, unknown>;
  status: RunStatus;
  counts: Record<string, number>;
  startedAt: string;
  finishedAt: string | null;
};

export interface RunItemSummary {
  action: string;
  tableName: string;
  checkId: string | null;
  count: number;
}

/** What a run journals it did to a row (or, case_created, to a batch of cases). */
export type ItemAction = 'case_created' | 'spelling_changed' | 'quarantined' | 'rejected' | 'restored' | 'case_deleted' | 'fk_step';

/**
 * The head of every statement that journals run items set-based, in the statement that makes
 * the change: INSERT_ITEMS SELECT run_id, action, check_id, table_name, row_key, before, after …
 */
export const INSERT_ITEMS = sql`INSERT INTO caseguard.run_items (run_id, action, check_id, table_name, row_key, before, after)`;

/** One item written on its own (an fk step, a rejected target), in the caller's transaction or session. */
export async function journalItem(
  db: Executor,
  runId: number,
  item: { action: ItemAction; checkId?: string | null; table: string; rowKey: Record<string, unknown>; before?: unknown; after?: unknown },
): Promise<void> {
  const json = (v: unknown) => (v === undefined || v === null ? sql`NULL` : sql`${JSON.stringify(v)}::jsonb`);
  await db.execute(sql`${INSERT_ITEMS} VALUES (${runId}, ${item.action}, ${item.checkId ?? null}, ${item.table},
    ${JSON.stringify(item.rowKey)}::jsonb, ${json(item.before)}, ${json(item.after)})`);
}

/** What a run's committed journal items say it did, by action: the durable truth, whatever the client counted. */
const COMMITTED: SQL = sql`coalesce((SELECT jsonb_object_agg(done.action, done.n) FROM (
    SELECT ${runItems.action} AS action, sum(${runItems.rowCount}) AS n FROM ${runItems} WHERE ${runItems.runId} = ${runs.runId} GROUP BY 1) done), '{}')`;

/** A run's process is alive while a session of this database carries its identity. */
const PROCESS_ALIVE = sql`EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.application_name = ${runs.process} AND a.datname = current_database())`;

/** The run's status, a run still marked running whose process has no session left as abandoned. */
const STATUS = sql<RunStatus>`CASE WHEN ${runs.status} = 'running' AND NOT ${PROCESS_ALIVE} THEN 'abandoned' ELSE ${runs.status} END`;

/**
 * Journals a new run; the caller holds the run lock. Runs still marked running are settled
 * first: one whose process is gone is finalised as abandoned; one whose process still has
 * sessions (it lost its lock session and will stop before its next write) makes this run wait
 * (BusyError), so two runs never write at once.
 */
export async function startRun(
  db: Executor,
  input: { command: string; options: Record<string, unknown>; dryRun: boolean; process: string },
): Promise<number> {
  await db
    .update(runs)
    .set({
      status: 'abandoned',
      finishedAt: sql`now()`,
      error: sql`coalesce(${runs.error}, 'the process ended without finishing the run')`,
      counts: sql`${runs.counts} || ${COMMITTED}`,
    })
    .where(and(eq(runs.status, 'running'), not(PROCESS_ALIVE)));
  const [other] = await db
    .select({ runId: runs.runId, command: runs.command, process: runs.process })
    .from(runs)
    .where(and(eq(runs.status, 'running'), PROCESS_ALIVE))
    .orderBy(runs.runId)
    .limit(1);
  if (other) {
    throw new BusyError(
      `run ${other.runId} (caseguard ${other.command}, ${other.process}) is still running although its lock session ended; it stops before its next write; try again in a moment`,
    );
  }
  let osUser: string | null = null;
  try {
    osUser = os.userInfo().username;
  } catch {
    osUser = process.env.USER ?? null;
  }
  // caseguard's own ids come from sequences moved past the highest id present first: a sequence
  // can hand out a value again after a crash (its advance was not flushed), and a duplicate key
  // on caseguard's own table must not fail a run. One run starts at a time (the run lock).
  await reseatSequences(db);
  const [created] = await db
    .insert(runs)
    .values({ command: input.command, options: input.options, dryRun: input.dryRun, osUser, host: os.hostname(), process: input.process })
    .returning({ runId: runs.runId });
  return created!.runId;
}

/**
 * A run's end. countsFromItems: the client's counts are overlaid with what the committed journal
 * items say (a run that lost its connection may have counted a batch the server lost).
 */
export async function finishRun(
  db: Executor,
  runId: number,
  outcome: { status: RunStatus; counts: Record<string, number>; error?: string; countsFromItems?: boolean },
): Promise<void> {
  const counts = outcome.countsFromItems ? sql`${JSON.stringify(outcome.counts)}::jsonb || ${COMMITTED}` : outcome.counts;
  await db
    .update(runs)
    .set({ status: outcome.status, counts, error: outcome.error ?? null, finishedAt: sql`now()` })
    .where(eq(runs.runId, runId));
}

/** caseguard's identity sequences (runs, run_items, quarantine) moved past their table's highest id, where a crash set them back. */
async function reseatSequences(db: Executor): Promise<void> {
  const reseat = (table: string, column: string) => sql`
    SELECT setval(pg_get_serial_sequence(${table}, ${column}), m)
      FROM (SELECT max(${sql.identifier(column)}) AS m FROM ${sql.raw(table)}) x
     WHERE m > coalesce(pg_sequence_last_value(pg_get_serial_sequence(${table}, ${column})::regclass), 0)`;
  await db.execute(reseat('caseguard.runs', 'run_id'));
  await db.execute(reseat('caseguard.run_items', 'item_id'));
  await db.execute(reseat('caseguard.quarantine', 'quarantine_id'));
}

const { process: _process, status: _status, ...recordColumns } = getTableColumns(runs);
const RUN_FIELDS = { ...recordColumns, status: STATUS };

function toRecord(row: Omit<RunRow, 'process' | 'status'> & { status: RunStatus }): RunRecord {
  return {
    ...row,
    options: row.options as Record<string, unknown>,
    counts: row.counts as Record<string, number>,
    startedAt: row.startedAt.toISOString(),
    finishedAt: row.finishedAt?.toISOString() ?? null,
  };
}

export async function listRuns(db: Executor, limit: number): Promise<RunRecord[]> {
  const rows = await db.select(RUN_FIELDS).from(runs).orderBy(desc(runs.runId)).limit(limit);
  return rows.map(toRecord);
}

export async function getRun(db: Executor, runId: number): Promise<(RunRecord & { items: RunItemSummary[] }) | undefined> {
  const [row] = await db.select(RUN_FIELDS).from(runs).where(eq(runs.runId, runId));
  if (!row) return undefined;
  const items = await db
    // an item stands for row_count rows (a recover batch's created cases: one item)
    .select({
      action: runItems.action,
      tableName: runItems.tableName,
      checkId: runItems.checkId,
      count: sql<number>`sum(${runItems.rowCount})`.mapWith(Number),
    })
    .from(runItems)
    .where(eq(runItems.runId, runId))
    .groupBy(runItems.action, runItems.tableName, runItems.checkId)
    .orderBy(runItems.action, runItems.tableName, runItems.checkId);
  return { ...toRecord(row), items };
}

/** Real (not dry) runs of one command by status, dead ones as abandoned. */
export async function runsByStatus(db: Executor, command: string): Promise<Partial<Record<RunStatus, number>>> {
  const rows = await db
    .select({ status: STATUS, n: count() })
    .from(runs)
    .where(and(eq(runs.command, command), not(runs.dryRun)))
    .groupBy(STATUS);
  const counts: Partial<Record<RunStatus, number>> = {};
  for (const row of rows) counts[row.status] = (counts[row.status] ?? 0) + row.n;
  return counts;
}
