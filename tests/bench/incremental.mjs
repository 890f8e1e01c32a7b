/**
 * The incremental gate: scan --since T after 1,000 progress rows changed (10 of them made
 * orphans) against a full scan of the same database, with the README's index on
 * case_intake_progress (updated_at) and deletion tracking installed (coverage complete). Then the
 * same window after 10 referenced cases were deleted in it. Everything is put back after.
 */
import { buildDataset, fmt, median } from './dataset.mjs';

const CHANGED = 1000;
const MADE_ORPHANS = 10;
const DELETED = 10;

export const incrementalSection = {
  id: 'incremental',
  title: 'incremental gate: scan --since over 1,000 changed rows vs a full scan',
  async run({ database, rows, dist, log }) {
    const { scan, installDeletionTracking, removeDeletionTracking } = await import(dist('core/index.js'));
    const { inspectDatabase } = await import(dist('core/db/inspect.js'));
    const pool = database.pool;
    const built = await buildDataset(pool, rows);
    log(`dataset: ${rows} cases, ${rows} progress rows, ${built.orphans} orphans${built.reused ? ' (reused)' : ''}`);
    await pool.query('CREATE INDEX IF NOT EXISTS bench_progress_updated ON mega_agent.case_intake_progress (updated_at)');
    await installDeletionTracking(database.db);
    const shape = await inspectDatabase(database.db);
    const gate = { failOn: 'error', maxFindings: 0 };
    const since = new Date((await pool.query('SELECT now() AS t')).rows[0].t);
    const changed = (
      await pool.query(`SELECT user_id, case_id FROM mega_agent.case_intake_progress WHERE user_id NOT LIKE 'orphan-user-%' LIMIT $1`, [
        CHANGED,
      ])
    ).rows;
    const restore = async () => {
      await pool.query(
        `UPDATE mega_agent.case_intake_progress p SET case_id = c.case_id, current_step = 0
           FROM jsonb_to_recordset($1::jsonb) AS c(user_id text, case_id text, orphan text)
          WHERE p.user_id = c.user_id AND p.case_id IN (c.case_id, c.orphan)`,
        [JSON.stringify(changed.map((c) => ({ ...c, orphan: `${c.case_id.slice(0, -4)}ffff` })))],
      );
    };
    try {
      await new Promise((resolve) => setTimeout(resolve, 20));
      // 1,000 rows changed after T, 10 of them now naming no case
      await pool.query(
        `UPDATE mega_agent.case_intake_progress p SET current_step = 1, updated_at = now(),
                case_id = CASE WHEN c.n <= $2 THEN left(p.case_id, 32) || 'ffff' ELSE p.case_id END
           FROM (SELECT x.user_id, x.case_id, row_number() OVER () AS n FROM jsonb_to_recordset($1::jsonb) AS x(user_id text, case_id text)) c
          WHERE p.user_id = c.user_id AND p.case_id = c.case_id`,
        [JSON.stringify(changed), MADE_ORPHANS],
      );
      await pool.query('ANALYZE mega_agent.case_intake_progress');
      const full = () => scan(database.db, shape, { databaseName: 'bench', limit: 20, gate });
      const window = () => scan(database.db, shape, { databaseName: 'bench', limit: 20, gate, since });
      const found = (r) => r.checks.find((c) => c.id === 'orphaned_progress').count;
      let report;
      // alternate the two, median of 3 each
      const fullTimes = [];
      const windowTimes = [];
      for (let i = 0; i < 4; i++) {
        const t0 = performance.now();
        report = await window();
        if (i > 0) windowTimes.push(performance.now() - t0);
        const t1 = performance.now();
        const all = await full();
        if (i > 0) fullTimes.push(performance.now() - t1);
        if (found(all) !== built.orphans + MADE_ORPHANS) throw new Error(`bench: full scan found ${found(all)}`);
      }
      const mid = (v) => [...v].sort((a, b) => a - b)[1];
      if (found(report) !== MADE_ORPHANS || report.coverage !== 'complete')
        throw new Error(`bench: the since scan found ${found(report)} (${report.coverage})`);
      const fullMs = mid(fullTimes);
      const windowMs = mid(windowTimes);

      // 10 referenced cases deleted in the window: their progress rows, changed before T, are found too
      const victims = (
        await pool.query(
          `DELETE FROM mega_agent.cases WHERE case_id IN (SELECT case_id::uuid FROM mega_agent.case_intake_progress
             WHERE user_id NOT LIKE 'orphan-user-%' AND updated_at < $1 LIMIT $2) RETURNING case_id, user_id, title, status, metadata, created_at, updated_at`,
          [since.toISOString(), DELETED],
        )
      ).rows;
      let deletedReport;
      const deletedMs = await median(3, async () => (deletedReport = await window()));
      await pool.query(`INSERT INTO mega_agent.cases SELECT * FROM jsonb_populate_recordset(NULL::mega_agent.cases, $1::jsonb)`, [
        JSON.stringify(victims),
      ]);
      if (found(deletedReport) !== MADE_ORPHANS + DELETED)
        throw new Error(`bench: with deletions the since scan found ${found(deletedReport)}`);

      const share = windowMs / fullMs;
      const lines = [
        `full scan ${fmt(fullMs)}; scan --since over ${CHANGED} changed rows ${fmt(windowMs)}: ${(share * 100).toFixed(2)}% (goal <= 2%) ${share <= 0.02 ? 'met' : 'MISSED'}`,
        `the same window after ${DELETED} referenced cases were deleted in it: ${fmt(deletedMs)} (legacy shape: a pass over progress for the rows naming them)`,
      ];
      return {
        lines,
        numbers: {
          'full scan (incremental section)': fullMs,
          'scan --since, 1,000 changed rows': windowMs,
          'scan --since, with 10 deletions': deletedMs,
        },
        markdown: [
          `${rows.toLocaleString('en')} progress rows; ${CHANGED} changed after T (${MADE_ORPHANS} of them made orphans); an index on ` +
            'case_intake_progress (updated_at) and deletion tracking installed, so coverage is complete. The two alternate, median of 3.',
          '',
          '| gate | time | found |',
          '|---|---|---|',
          `| full scan | ${fmt(fullMs)} | ${built.orphans + MADE_ORPHANS} orphans |`,
          `| scan --since T, ${CHANGED} changed rows | ${fmt(windowMs)} (**${(share * 100).toFixed(2)}%** of the full scan; goal <= 2%: ${share <= 0.02 ? 'met' : 'missed'}) | ${MADE_ORPHANS} |`,
          `| the same window after ${DELETED} referenced cases were deleted in it | ${fmt(deletedMs)} | ${MADE_ORPHANS + DELETED} |`,
          '',
          'A window in which cases were deleted reads, besides the changed rows, the rows naming a deleted case whenever they ' +
            'changed: in the legacy shape (text ids, no index that uuid semantics can use) that is a pass over the referencing ' +
            'tables; in the uuid shape after fk add it is an index lookup. `caseguard watch` pays that pass once per deletion, not per gate.',
        ],
      };
    } finally {
      await restore();
      await removeDeletionTracking(database.db);
      await pool.query('DROP INDEX IF EXISTS mega_agent.bench_progress_updated');
    }
  },
};
