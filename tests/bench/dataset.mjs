/**
 * Whether the dataset of the last build is still there as built (sections that change it put
 * it back, or change the counts this compares): at 10M rows a build takes minutes.
 */
async function intact(pool, rows, orphans) {
  const marker = await pool.query(`SELECT to_regclass('public.bench_dataset') IS NOT NULL AS ok`);
  if (!marker.rows[0].ok) return false;
  const r = await pool.query(
    `SELECT d.rows = $1 AND d.orphans = $2
        AND (SELECT count(*) FROM mega_agent.cases) = $1
        AND (SELECT count(*) FROM mega_agent.case_intake_progress) = $1
        AND (SELECT count(*) FROM mega_agent.case_intake_progress WHERE user_id LIKE 'orphan-user-%') = $2
        AND NOT EXISTS (SELECT 1 FROM mega_agent.case_memory) AND NOT EXISTS (SELECT 1 FROM mega_agent.bot_user_context)
        AND (SELECT data_type FROM information_schema.columns
              WHERE table_schema = 'mega_agent' AND table_name = 'case_intake_progress' AND column_name = 'case_id') = 'text' AS ok
       FROM public.bench_dataset d`,
    [rows, orphans],
  );
  return r.rows[0]?.ok === true;
}

/** Builds the benchmark dataset: N cases, N progress rows of which a share (1%) are orphans; reused while intact. */
export async function buildDataset(pool, rows, { orphanShare = 0.01 } = {}) {
  const orphans = Math.round(rows * orphanShare);
  const healthy = rows - orphans;
  if (await intact(pool, rows, orphans)) return { orphans, healthy, seconds: 0, reused: true };
  await pool.query('DROP TABLE IF EXISTS public.bench_dataset');
  await pool.query('TRUNCATE mega_agent.cases, mega_agent.case_intake_progress, mega_agent.case_memory, mega_agent.bot_user_context');
  const t0 = performance.now();
  await pool.query(
    `INSERT INTO mega_agent.cases (case_id, user_id, title, status)
     SELECT gen_random_uuid(), 'user-' || g, 'Intake Session', 'intake' FROM generate_series(1, $1) g`,
    [rows],
  );
  await pool.query(
    `INSERT INTO mega_agent.case_intake_progress (user_id, case_id, current_block, current_step)
     SELECT user_id, case_id::text, 'contact', 0 FROM mega_agent.cases ORDER BY user_id LIMIT $1`,
    [healthy],
  );
  await pool.query(
    `INSERT INTO mega_agent.case_intake_progress (user_id, case_id, current_block, current_step)
     SELECT 'orphan-user-' || g, gen_random_uuid()::text, 'contact', 0 FROM generate_series(1, $1) g`,
    [orphans],
  );
  await pool.query('VACUUM ANALYZE mega_agent.cases, mega_agent.case_intake_progress');
  await pool.query('CREATE TABLE public.bench_dataset (rows bigint NOT NULL, orphans bigint NOT NULL)');
  await pool.query('INSERT INTO public.bench_dataset VALUES ($1, $2)', [rows, orphans]);
  return { orphans, healthy, seconds: (performance.now() - t0) / 1000 };
}

export async function timeIt(fn) {
  const t0 = performance.now();
  const value = await fn();
  return { ms: performance.now() - t0, value };
}

/** Median of n runs after one warm-up. */
export async function median(n, fn) {
  await fn();
  const times = [];
  for (let i = 0; i < n; i++) times.push((await timeIt(fn)).ms);
  times.sort((a, b) => a - b);
  return times[Math.floor(times.length / 2)];
}

/** The p-th percentile (0..1) of some numbers. */
export function percentile(values, p) {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted.length === 0 ? Number.NaN : sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))];
}

export const fmt = (ms) => (ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${ms.toFixed(0)} ms`);
