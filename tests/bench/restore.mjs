/**
 * quarantine restore at three sizes (1%, 10% and 100% of the scale: 10k, 100k and 1M rows at
 * full scale) on a quarantine without statistics (truncated, never analysed, autovacuum off for
 * it), as after a crash or on a fresh install: the cost per row should not grow with the size.
 */
import { fmt, timeIt } from './dataset.mjs';

async function fill(pool, n) {
  await pool.query('TRUNCATE caseguard.quarantine, caseguard.run_items');
  await pool.query("DELETE FROM mega_agent.case_intake_progress WHERE user_id LIKE 'q-%'");
  const run = (await pool.query("INSERT INTO caseguard.runs (command, status) VALUES ('recover', 'completed') RETURNING run_id")).rows[0]
    .run_id;
  // rows written as the application would, then moved aside the way recover --quarantine does
  await pool.query(
    `INSERT INTO mega_agent.case_intake_progress (user_id, case_id, current_block)
     SELECT 'q-' || g, 'not-a-uuid-' || g, 'contact' FROM generate_series(1, $1) g`,
    [n],
  );
  await pool.query(
    `WITH d AS (DELETE FROM mega_agent.case_intake_progress p WHERE p.user_id LIKE 'q-%' RETURNING to_jsonb(p) AS row_data)
     INSERT INTO caseguard.quarantine (run_id, source_table, reason, row_data) SELECT $1, 'case_intake_progress', 'invalid_case_id', row_data FROM d`,
    [run],
  );
  await pool.query('CHECKPOINT');
  return Number(run);
}

export const restoreSection = {
  id: 'restore',
  title: 'quarantine restore without statistics, at three sizes',
  async run({ database, rows, dist, log }) {
    const { planRestore, applyRestore, inspectDatabase, silentLogger } = await import(dist('core/index.js'));
    const pool = database.pool;
    await pool.query('ALTER TABLE caseguard.quarantine SET (autovacuum_enabled = false)');
    const sizes = [Math.max(100, Math.round(rows / 100)), Math.max(1000, Math.round(rows / 10)), rows];
    const results = [];
    try {
      for (const n of sizes) {
        const run = await fill(pool, n);
        const stats = (await pool.query("SELECT reltuples FROM pg_class WHERE oid = 'caseguard.quarantine'::regclass")).rows[0].reltuples;
        const shape = await inspectDatabase(database.db);
        const t = await timeIt(async () => applyRestore(database, await planRestore(database, shape, run), { log: silentLogger }));
        if (t.value.restored !== n) throw new Error(`restored ${t.value.restored} of ${n}`);
        results.push({ n, ms: t.ms, perRowUs: (t.ms * 1000) / n, stats });
        log(`${n.toLocaleString('en')} rows: ${fmt(t.ms)} (${((t.ms * 1000) / n).toFixed(1)} µs a row; reltuples ${stats})`);
      }
    } finally {
      await pool.query('ALTER TABLE caseguard.quarantine RESET (autovacuum_enabled)');
      await pool.query("DELETE FROM mega_agent.case_intake_progress WHERE user_id LIKE 'q-%'");
      await pool.query('TRUNCATE caseguard.quarantine, caseguard.run_items');
    }
    const growth = results[2].perRowUs / results[0].perRowUs;
    const linear = growth <= 2;
    return {
      lines: [`cost per row, largest vs smallest: ${growth.toFixed(2)}x (goal: linear, <= 2x) ${linear ? 'met' : 'MISSED'}`],
      markdown: [
        'The quarantine is truncated before each size and never analysed (autovacuum off for it), so the planner has no statistics, ' +
          'as after a crash or on a fresh install. Before this layout 5k rows took 12 s, 20k 193 s, and 160k did not finish in 300 s.',
        '',
        '| rows | restore | per row |',
        '|---|---|---|',
        ...results.map((r) => `| ${r.n.toLocaleString('en')} | ${fmt(r.ms)} | ${r.perRowUs.toFixed(1)} µs |`),
        '',
        `Cost per row at the largest size against the smallest: **${growth.toFixed(2)}x** (goal: linear, <= 2x: ${linear ? 'met' : 'missed'}).`,
      ],
    };
  },
};
