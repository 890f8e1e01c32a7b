/**
 * The run journal: every mutating run (dry or real) gets a row in caseguard.runs, and every row
 * it created, changed or quarantined a row in caseguard.run_items (written by the same statement
 * that does the change, so the record is exact).
 */
import os from 'node:os';
import { sql } from 'drizzle-orm';
import type { Executor } from '../db/database.js';
import { LockKey } from '../db/locks.js';

/** 'abandoned': journaled as running, but no session holds its lock (the process died). */
export type RunStatus = 'running' | 'completed' | 'interrupted' | 'failed' | 'refused' | 'abandoned';

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

export async function startRun(db: Executor, input: { command: string; options: Record<string, unknown>; dryRun: boolean }): Promise<number> {
  let osUser: string | null = null;
  try {
    osUser = os.userInfo().username;
  } catch {
    osUser = process.env.USER ?? null;
  }
  const result = await db.execute<{ run_id: string }>(sql`
    INSERT INTO caseguard.runs (command, options, dry_run, os_user, host)
    VALUES (${input.command}, ${JSON.stringify(input.options)}::jsonb, ${input.dryRun}, ${osUser}, ${os.hostname()})
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

/**
 * A run still marked running whose command's advisory lock nobody holds died without finishing
 * (SIGKILL, a lost machine): it is shown as abandoned.
 */
const RUN_COLUMNS = sql`run_id, command, options, dry_run, db_user, os_user, host, counts, error, started_at, finished_at,
  CASE WHEN status = 'running' AND NOT EXISTS (
         SELECT 1 FROM pg_locks l
          WHERE l.locktype = 'advisory' AND l.granted AND l.classid = ${LockKey.recover[0]}::oid
            AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
            AND l.objid = (CASE WHEN command LIKE 'fk %' THEN ${LockKey.fk[1]} ELSE ${LockKey.recover[1]} END)::oid)
       THEN 'abandoned' ELSE status END AS status`;

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
