/** Bulk orphans for batch, kill and signal tests. */
import type pg from 'pg';

/** n progress rows whose canonical case ids have no case; users orphan-<i>. */
export async function seedOrphans(pool: pg.Pool, n: number, prefix = 'orphan'): Promise<void> {
  await pool.query(
    `INSERT INTO mega_agent.case_intake_progress (user_id, case_id, current_block)
     SELECT $2 || '-' || g, gen_random_uuid()::text, 'contact' FROM generate_series(1, $1) g`,
    [n, prefix],
  );
}

export async function recoveredCaseCount(pool: pg.Pool): Promise<{ cases: number; distinct: number }> {
  const r = await pool.query(
    "SELECT count(*)::int AS cases, count(DISTINCT case_id)::int AS distinct FROM mega_agent.cases WHERE title = 'Intake Session (Recovered)'",
  );
  return r.rows[0];
}
