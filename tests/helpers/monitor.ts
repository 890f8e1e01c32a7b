/**
 * A funnel and recoveries fixture of known counts, relative to the server's clock (days in UTC),
 * and the Prometheus text parsed into samples for assertions.
 */
import type pg from 'pg';

/** Day d (0 today, 1 yesterday…) at hh:00 UTC, as SQL. */
const at = (d: number, hour = 1) =>
  `(date_trunc('day', now() AT TIME ZONE 'UTC') - interval '${d} days' + interval '${hour} hours') AT TIME ZONE 'UTC'`;

/**
 * Intakes (window of 3 days, abandoned after 24 h):
 *   today: 2 completed (60 s, 120 s), 1 cancelled, 1 in progress (touched now)
 *   day -1: 1 cancelled, 1 in progress (touched an hour ago)
 *   day -2: 1 completed (3600 s), 2 abandoned (untouched for 30 h)
 *   day -5: 1 completed (outside the window)
 * Recovered cases: 2 by the guard today and 1 ten days ago; 1 by recover today.
 */
export const FUNNEL = {
  days: 3,
  abandonedAfterMs: 24 * 3_600_000,
  byDay: [
    { started: 3, completed: 1, cancelled: 0, abandoned: 2, inProgress: 0 },
    { started: 2, completed: 0, cancelled: 1, abandoned: 0, inProgress: 1 },
    { started: 4, completed: 2, cancelled: 1, abandoned: 0, inProgress: 1 },
  ],
  totals: { started: 9, completed: 3, cancelled: 2, abandoned: 2, inProgress: 2 },
  ratio: 3 / 7,
  p50: 120,
  // percentile_cont(0.95) of 60, 120, 3600
  p95: 120 + 0.9 * (3600 - 120),
  recovered: { ensure_case: { total: 3, today: 2 }, recover: { total: 1, today: 1 } },
};

export async function seedFunnel(pool: pg.Pool): Promise<void> {
  const rows: Array<[string, string, string, string]> = [
    // user, status, created_at, updated_at
    ['f-t1', 'completed', at(0), `${at(0)} + interval '60 seconds'`],
    ['f-t2', 'completed', at(0), `${at(0)} + interval '120 seconds'`],
    ['f-t3', 'cancelled', at(0), at(0)],
    ['f-t4', 'in_progress', at(0), 'now()'],
    ['f-y1', 'cancelled', at(1), at(1)],
    ['f-y2', 'in_progress', at(1), "now() - interval '1 hour'"],
    ['f-d1', 'completed', at(2), `${at(2)} + interval '3600 seconds'`],
    ['f-d2', 'in_progress', at(2), "now() - interval '30 hours'"],
    ['f-d3', 'in_progress', at(2), "now() - interval '30 hours'"],
    ['f-old', 'completed', at(5), `${at(5)} + interval '10 seconds'`],
  ];
  for (const [user, status, created, updated] of rows) {
    await pool.query(
      `WITH c AS (INSERT INTO mega_agent.cases (user_id, title, created_at) VALUES ($1, 'Funnel', ${created}) RETURNING case_id)
       INSERT INTO mega_agent.case_intake_progress (user_id, case_id, status, created_at, updated_at)
       SELECT $1, case_id::text, $2, ${created}, ${updated} FROM c`,
      [user, status],
    );
  }
  const recovered: Array<[string, string]> = [
    ['ensure_case_exists', 'now()'],
    ['ensure_case_exists', 'now()'],
    ['ensure_case_exists', "now() - interval '10 days'"],
    ['caseguard', 'now()'],
  ];
  for (const [by, created] of recovered) {
    await pool.query(
      `INSERT INTO mega_agent.cases (user_id, title, metadata, created_at) VALUES ('r', 'Intake Session (Recovered)', jsonb_build_object('recovered_by', $1::text), ${created})`,
      [by],
    );
  }
}

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** The samples of a Prometheus text exposition (comments skipped). */
export function parseMetrics(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!match) throw new Error(`not a sample line: ${line}`);
    const labels: Record<string, string> = {};
    for (const m of (match[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[m[1]!] = m[2]!;
    samples.push({ name: match[1]!, labels, value: Number(match[3]) });
  }
  return samples;
}

/** The one sample of a name with these labels (throws if none or several). */
export function sample(samples: Sample[], name: string, labels: Record<string, string> = {}): number {
  const found = samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  if (found.length !== 1) throw new Error(`${found.length} samples of ${name} ${JSON.stringify(labels)}`);
  return found[0]!.value;
}
