/**
 * The run journal: every mutating run (dry or real) gets a row in caseguard.runs, and every row
 * it created, changed or quarantined a row in caseguard.run_items (written by the same statement
 * that does the change, so the record is exact).
 */
import os from 'node:os';
import { sql } from 'drizzle-orm';
import type { Executor } from '../db/database.js';
import { BusyError } from '../errors.js';

/** 'abandoned': journaled as running, but its process has no session left (it died). */
export type RunStatus = 'running' | 'completed' | 'partial' | 'interrupted' | 'failed' | 'refused' | 'abandoned';

export interface RunRecord {
  runId: number;
  command: string;
  options: Record<string, unknown>;
  dryRun: boolean;
  dbUser: string;
  osUser: string | null;
  host: string | null;
  status: RunStatus;
  counts: Record<string, number>;
  error: string | null;
  startedAt: string;
  finishedAt: string | null;
}

export interface RunItemSummary {
  action: string;
  tableName: string;
  checkId: string | null;
  count: number;
}

/** A run's process is alive while a session of this database carries its identity. */
const PROCESS_ALIVE = sql`EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.application_name = runs.process AND a.datname = current_database())`;

/**
 * Journals a new run; the caller holds the run lock. Runs still marked running are settled
 * first: one whose process is gone is finalised as abandoned; one whose process still has
 * sessions (it lost its lock session and will stop before its next write) makes this run wait
 * (BusyError), so two runs never write at once.
 */
export async function startRun(db: Executor, input: { command: string; options: Record<string, unknown>; dryRun: boolean; process: string }): Promise<number> {
  await db.execute(sql`
    UPDATE caseguard.runs SET status = 'abandoned', finished_at = now(),
           error = coalesce(error, 'the process ended without finishing the run'),
           -- what its committed batches did, as the journal recorded it
           counts = counts || coalesce((SELECT jsonb_object_agg(a.action, a.n) FROM (
             SELECT i.action, count(*) AS n FROM caseguard.run_items i WHERE i.run_id = runs.run_id GROUP BY i.action) a), '{}')
     WHERE status = 'running' AND NOT ${PROCESS_ALIVE}`);
  const live = await db.execute<{ run_id: string; command: string; process: string }>(sql`
    SELECT run_id, command, process FROM caseguard.runs WHERE status = 'running' AND ${PROCESS_ALIVE} ORDER BY run_id LIMIT 1`);
  const other = live.rows[0];
  if (other) {
    throw new BusyError(
      `run ${other.run_id} (caseguard ${other.command}, ${other.process}) is still running although its lock session ended; it stops before its next write; try again in a moment`,
    );
  }
  let osUser: string | null = null;
  try {
    osUser = os.userInfo().username;
  } catch {
    osUser = process.env.USER ?? null;
  }
  const result = await db.execute<{ run_id: string }>(sql`
    INSERT INTO caseguard.runs (command, options, dry_run, os_user, host, process)
    VALUES (${input.command}, ${JSON.stringify(input.options)}::jsonb, ${input.dryRun}, ${osUser}, ${os.hostname()}, ${input.process})
    RETURNING run_id`);
  return Number(result.rows[0]!.run_id);
}

export async function finishRun(
  db: Executor,
  runId: number,
  outcome: { status: RunStatus; counts: Record<string, number>; error?: string },
): Promise<void> {
  await db.execute(sql`
    UPDATE caseguard.runs
       SET status = ${outcome.status}, counts = ${JSON.stringify(outcome.counts)}::jsonb,
           error = ${outcome.error ?? null}, finished_at = now()
     WHERE run_id = ${runId}`);
}

/** A run still marked running whose process has no session left died without finishing: abandoned. */
const RUN_COLUMNS = sql`run_id, command, options, dry_run, db_user, os_user, host, counts, error, started_at, finished_at,
  CASE WHEN status = 'running' AND NOT ${PROCESS_ALIVE} THEN 'abandoned' ELSE status END AS status`;

function toRecord(r: Record<string, unknown>): RunRecord {
  return {
    runId: Number(r.run_id),
    command: String(r.command),
    options: r.options as Record<string, unknown>,
    dryRun: Boolean(r.dry_run),
    dbUser: String(r.db_user),
    osUser: (r.os_user as string | null) ?? null,
    host: (r.host as string | null) ?? null,
    status: r.status as RunStatus,
    counts: r.counts as Record<string, number>,
    error: (r.error as string | null) ?? null,
    startedAt: new Date(r.started_at as string).toISOString(),
    finishedAt: r.finished_at ? new Date(r.finished_at as string).toISOString() : null,
  };
}

export async function listRuns(db: Executor, limit: number): Promise<RunRecord[]> {
  const result = await db.execute(sql`SELECT ${RUN_COLUMNS} FROM caseguard.runs ORDER BY run_id DESC LIMIT ${limit}`);
  return result.rows.map(toRecord);
}

export async function getRun(db: Executor, runId: number): Promise<(RunRecord & { items: RunItemSummary[] }) | undefined> {
  const result = await db.execute(sql`SELECT ${RUN_COLUMNS} FROM caseguard.runs WHERE run_id = ${runId}`);
  const row = result.rows[0];
  if (!row) return undefined;
  const items = await db.execute<{ action: string; table_name: string; check_id: string | null; n: string }>(sql`
    SELECT action, table_name, check_id, count(*) AS n FROM caseguard.run_items
     WHERE run_id = ${runId} GROUP BY action, table_name, check_id ORDER BY action, table_name, check_id`);
  return {
    ...toRecord(row),
    items: items.rows.map((i) => ({ action: i.action, tableName: i.table_name, checkId: i.check_id, count: Number(i.n) })),
  };
}

/** Real (not dry) runs of one command by status, dead ones as abandoned. */
export async function runsByStatus(db: Executor, command: string): Promise<Partial<Record<RunStatus, number>>> {
  const result = await db.execute<{ status: RunStatus; n: string } & Record<string, unknown>>(sql`
    SELECT CASE WHEN status = 'running' AND NOT ${PROCESS_ALIVE} THEN 'abandoned' ELSE status END AS status, count(*) AS n
      FROM caseguard.runs WHERE command = ${command} AND NOT dry_run GROUP BY 1`);
  const counts: Partial<Record<RunStatus, number>> = {};
  for (const row of result.rows) counts[row.status] = (counts[row.status] ?? 0) + Number(row.n);
  return counts;
}
