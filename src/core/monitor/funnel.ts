/**
 * The intake funnel: intakes started per day (UTC) over the last days, and what became of them:
 * completed, cancelled, abandoned (still in progress and untouched for a while) or still in
 * progress. One pass over the progress rows of the window (index-backed where the application
 * has an index on case_intake_progress(created_at)); read-only.
 */
import { sql } from 'drizzle-orm';
import type { Executor } from '../db/database.js';

export interface FunnelOptions {
  /** Days shown, today (UTC) included. */
  days: number;
  /** An intake in progress and untouched for this long counts as abandoned. */
  abandonedAfterMs: number;
}

export interface FunnelDay {
  /** YYYY-MM-DD, UTC: the day the intakes started. */
  day: string;
  started: number;
  completed: number;
  cancelled: number;
  abandoned: number;
  inProgress: number;
}

export interface FunnelReport {
  days: FunnelDay[];
  totals: Omit<FunnelDay, 'day'>;
  /** completed / (completed + cancelled + abandoned): of the intakes that ended; null if none did. */
  completionRatio: number | null;
  /** Seconds from start to completion of the completed intakes, null if there are none. */
  completionSeconds: { p50: number | null; p95: number | null };
  /** When the window was read (the server's clock). */
  readAt: string;
}

export const FUNNEL_STAGES = ['started', 'completed', 'cancelled', 'abandoned', 'inProgress'] as const;

interface DayRow {
  day: string;
  started: string;
  completed: string;
  cancelled: string;
  abandoned: string;
  in_progress: string;
  p50: number | null;
  p95: number | null;
  read_at: Date | string;
}

export async function readFunnel(db: Executor, options: FunnelOptions): Promise<FunnelReport> {
  const result = await db.execute<DayRow & Record<string, unknown>>(sql`
    WITH bounds AS (
      SELECT (now() AT TIME ZONE 'UTC')::date - ${options.days - 1}::int AS first_day,
             now() - make_interval(secs => ${options.abandonedAfterMs / 1000}::float8) AS idle_before
    ),
    p AS (
      SELECT (p.created_at AT TIME ZONE 'UTC')::date AS day, p.status, p.created_at, p.updated_at
        FROM mega_agent.case_intake_progress p
       WHERE p.created_at >= (SELECT first_day::timestamp AT TIME ZONE 'UTC' FROM bounds)
    ),
    per_day AS (
      SELECT day,
             count(*) AS started,
             count(*) FILTER (WHERE status = 'completed') AS completed,
             count(*) FILTER (WHERE status = 'cancelled') AS cancelled,
             count(*) FILTER (WHERE status = 'in_progress' AND updated_at < (SELECT idle_before FROM bounds)) AS abandoned,
             count(*) FILTER (WHERE status = 'in_progress' AND updated_at >= (SELECT idle_before FROM bounds)) AS in_progress
        FROM p GROUP BY day
    ),
    durations AS (
      SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM updated_at - created_at)) AS p50,
             percentile_cont(0.95) WITHIN GROUP (ORDER BY extract(epoch FROM updated_at - created_at)) AS p95
        FROM p WHERE status = 'completed'
    )
    SELECT to_char(d.day, 'YYYY-MM-DD') AS day,
           coalesce(pd.started, 0) AS started, coalesce(pd.completed, 0) AS completed,
           coalesce(pd.cancelled, 0) AS cancelled, coalesce(pd.abandoned, 0) AS abandoned,
           coalesce(pd.in_progress, 0) AS in_progress,
           durations.p50, durations.p95, now() AS read_at
      FROM bounds
     CROSS JOIN LATERAL generate_series(bounds.first_day, bounds.first_day + ${options.days - 1}::int, '1 day') AS g(ts)
     CROSS JOIN LATERAL (SELECT g.ts::date AS day) d
      LEFT JOIN per_day pd ON pd.day = d.day
     CROSS JOIN durations
     ORDER BY d.day`);
  const days: FunnelDay[] = result.rows.map((r) => ({
    day: r.day,
    started: Number(r.started),
    completed: Number(r.completed),
    cancelled: Number(r.cancelled),
    abandoned: Number(r.abandoned),
    inProgress: Number(r.in_progress),
  }));
  const totals = { started: 0, completed: 0, cancelled: 0, abandoned: 0, inProgress: 0 };
  for (const day of days) for (const stage of FUNNEL_STAGES) totals[stage] += day[stage];
  const ended = totals.completed + totals.cancelled + totals.abandoned;
  const first = result.rows[0];
  return {
    days,
    totals,
    completionRatio: ended > 0 ? totals.completed / ended : null,
    completionSeconds: { p50: numberOrNull(first?.p50), p95: numberOrNull(first?.p95) },
    readAt: new Date(first?.read_at ?? Date.now()).toISOString(),
  };
}

function numberOrNull(value: unknown): number | null {
  return value === null || value === undefined ? null : Number(value);
}
