/** Builds the benchmark dataset: N cases, N progress rows of which 1% are orphans. */
export async function buildDataset(pool, rows, { orphanShare = 0.01 } = {}) {
  await pool.query('TRUNCATE mega_agent.cases, mega_agent.case_intake_progress, mega_agent.case_memory, mega_agent.bot_user_context');
  const orphans = Math.round(rows * orphanShare);
  const healthy = rows - orphans;
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

export const fmt = (ms) => (ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${ms.toFixed(0)} ms`);
