/**
 * fk add per strategy on a live table: total time, and the longest stall a writer saw (the
 * maximum latency of the writer loop's transactions while the migration ran).
 */
import { fmt, timeIt } from './dataset.mjs';

async function build(pool, rows) {
  await pool.query('TRUNCATE mega_agent.cases, mega_agent.case_intake_progress, mega_agent.case_memory, mega_agent.bot_user_context');
  await pool.query(
    `INSERT INTO mega_agent.cases (case_id, user_id, title) SELECT gen_random_uuid(), 'user-' || g, 'Intake Session' FROM generate_series(1, $1) g`,
    [rows],
  );
  await pool.query(
    `INSERT INTO mega_agent.case_intake_progress (user_id, case_id, current_block) SELECT user_id, case_id::text, 'contact' FROM mega_agent.cases`,
  );
  // one memory row per case, and an active-case pointer for half the users: all three references
  await pool.query(
    `INSERT INTO mega_agent.case_memory (case_id, user_id, kind, content) SELECT case_id::text, user_id, 'intake_answer', '{}' FROM mega_agent.cases`,
  );
  await pool.query(
    `INSERT INTO mega_agent.bot_user_context (user_id, active_case_id) SELECT user_id, case_id::text FROM mega_agent.cases WHERE random() < 0.5`,
  );
  await pool.query('VACUUM ANALYZE mega_agent.cases, mega_agent.case_intake_progress, mega_agent.case_memory, mega_agent.bot_user_context');
}

/** Writers like the bot's: a new case, its progress, memory and pointer; an answer to an existing row. */
function startWriters(pool, count, rows) {
  let stop = false;
  const latencies = [];
  let errors = 0;
  let n = 0;
  const writer = async (w) => {
    while (!stop) {
      const i = n++;
      const t0 = performance.now();
      const client = await pool.connect();
      try {
        await client.query('BEGIN');
        const c = await client.query(
          "INSERT INTO mega_agent.cases (user_id, title) VALUES ($1, 'Intake Session') RETURNING case_id::text",
          [`writer-${w}-${i}`],
        );
        await client.query("INSERT INTO mega_agent.case_intake_progress (user_id, case_id, current_block) VALUES ($1, $2, 'contact')", [
          `writer-${w}-${i}`,
          c.rows[0].case_id,
        ]);
        await client.query("INSERT INTO mega_agent.case_memory (case_id, user_id, kind, content) VALUES ($1, $2, 'intake_answer', '{}')", [
          c.rows[0].case_id,
          `writer-${w}-${i}`,
        ]);
        await client.query(
          'INSERT INTO mega_agent.bot_user_context (user_id, active_case_id) VALUES ($1, $2) ON CONFLICT (user_id) DO UPDATE SET active_case_id = EXCLUDED.active_case_id',
          [`writer-${w}-${i}`, c.rows[0].case_id],
        );
        await client.query(
          'UPDATE mega_agent.case_intake_progress SET answers = answers || \'{"seen": "yes"}\', updated_at = now() WHERE user_id = $1',
          [`user-${1 + (i % rows)}`],
        );
        await client.query('COMMIT');
      } catch {
        errors++;
        await client.query('ROLLBACK').catch(() => undefined);
      } finally {
        client.release();
      }
      latencies.push(performance.now() - t0);
    }
  };
  const running = Array.from({ length: count }, (_, w) => writer(w));
  return {
    async stop() {
      stop = true;
      await Promise.all(running);
      const sorted = [...latencies].sort((a, b) => a - b);
      return { count: sorted.length, errors, max: sorted.at(-1) ?? 0, p99: sorted[Math.floor(sorted.length * 0.99)] ?? 0 };
    },
  };
}

export const fkSection = {
  id: 'fk',
  title: 'fk add per strategy, with a writer loop running',
  async run({ database, rows, dist, log }) {
    const { DEFAULT_TIMING, planFkAdd, applyFkAdd, planFkDrop, applyFkDrop } = await import(dist('core/index.js'));
    const { inspectDatabase } = await import(dist('core/db/inspect.js'));
    const { silentLogger } = await import(dist('core/logger.js'));
    // the CLI's defaults: short, growing lock timeouts, no statement timeout
    const timing = DEFAULT_TIMING;
    const results = [];
    for (const strategy of ['online', 'rewrite']) {
      await build(database.pool, rows);
      const writers = startWriters(database.pool, 4, rows);
      await new Promise((r) => setTimeout(r, 300)); // writers warm up
      let run;
      let w;
      try {
        run = await timeIt(async () => {
          const plan = await planFkAdd(database, await inspectDatabase(database.db), { strategy, timing, batchSize: 10_000 });
          return applyFkAdd(database, plan, { log: silentLogger });
        });
      } finally {
        w = await writers.stop();
      }
      results.push({ strategy, ms: run.ms, ...w });
      log(
        `${strategy}: ${fmt(run.ms)}; writers: ${w.count} transactions, ${w.errors} errors, p99 ${fmt(w.p99)}, longest stall ${fmt(w.max)}`,
      );
      // back to text, without the FKs and their indexes, for the next strategy
      await applyFkDrop(database, await planFkDrop(database, { revertType: true, timing }), { log: silentLogger });
      await database.pool.query(`DROP INDEX IF EXISTS mega_agent.case_intake_progress_case_id_idx, mega_agent.case_memory_case_id_idx,
        mega_agent.bot_user_context_active_case_id_idx`);
    }
    const online = results.find((r) => r.strategy === 'online');
    const lines = [`online writer stall ${fmt(online.max)} (goal <= 1 s) ${online.max <= 1000 ? 'met' : 'MISSED'}`];
    return {
      lines,
      markdown: [
        `${rows.toLocaleString('en')} progress rows, as many memory rows, pointers for half the users: all three foreign keys; ` +
          "4 writers (a case, its progress, memory and pointer, and an answer to an existing row, per transaction); the CLI's lock retry defaults.",
        '',
        '| strategy | total | writer transactions | writer errors | writer p99 | longest writer stall |',
        '|---|---|---|---|---|---|',
        ...results.map((r) => `| ${r.strategy} | ${fmt(r.ms)} | ${r.count} | ${r.errors} | ${fmt(r.p99)} | **${fmt(r.max)}** |`),
        '',
        `Goal: online stall <= 1 s: ${online.max <= 1000 ? 'met' : 'missed'}.`,
      ],
    };
  },
};
