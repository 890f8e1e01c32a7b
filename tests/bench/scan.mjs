/** scan (all seven checks) against the seed's bare text anti-join, on the same database. */
import { buildDataset, fmt, median } from './dataset.mjs';

const BARE = `SELECT cip.user_id, cip.case_id FROM mega_agent.case_intake_progress cip
  WHERE NOT EXISTS (SELECT 1 FROM mega_agent.cases c WHERE c.case_id::text = cip.case_id)`;

export const scanSection = {
  id: 'scan',
  title: 'scan vs the bare anti-join',
  async run({ database, rows, dist, log }) {
    const { scan } = await import(dist('core/scan/scan.js'));
    const { inspectDatabase } = await import(dist('core/db/inspect.js'));
    const built = await buildDataset(database.pool, rows);
    log(`dataset: ${rows} cases, ${rows} progress rows, ${built.orphans} orphans (built in ${built.seconds.toFixed(1)} s)`);
    const shape = await inspectDatabase(database.db);
    let found = 0;
    const bare = await median(3, async () => {
      const r = await database.pool.query(BARE);
      found = r.rowCount;
    });
    let scanned;
    const full = await median(3, async () => {
      scanned = await scan(database.db, shape, { databaseName: 'bench', limit: 20, gate: { failOn: 'error', maxFindings: 0 } });
    });
    const orphans = scanned.checks.find((c) => c.id === 'orphaned_progress').count;
    if (found !== built.orphans || orphans !== built.orphans) throw new Error(`bench: expected ${built.orphans} orphans, bare found ${found}, scan ${orphans}`);
    const ratio = full / bare;
    const lines = [
      `bare anti-join: ${fmt(bare)} (${found} rows)`,
      `scan, 7 checks: ${fmt(full)}`,
      `ratio: ${ratio.toFixed(2)}x (goal <= 1.10x) ${ratio <= 1.1 ? 'met' : 'MISSED'}`,
    ];
    return {
      lines,
      markdown: [
        '| measure | median of 3 |',
        '|---|---|',
        `| seed's bare anti-join | ${fmt(bare)} |`,
        `| caseguard scan, all 7 checks | ${fmt(full)} |`,
        `| ratio | **${ratio.toFixed(2)}x** (goal <= 1.10x: ${ratio <= 1.1 ? 'met' : 'missed'}) |`,
        ...(ratio <= 1.1
          ? []
          : [
              '',
              'Why the goal is missed: finding owner_mismatch too takes the anti-join on (case_id, user_id) rather than case_id ' +
                'alone (about 5-8% more); then every candidate is classified with uuid semantics: the uuid check ' +
                '(pg_input_is_valid on 16+, a regular expression of about 4 µs a row before), an index lookup of the case, ' +
                'the duplicate check and the per-check aggregation of counts and samples. At 1% orphans that is 10,000 ' +
                "candidates, about 100 ms over the bare anti-join's half second; the ratio shrinks as damage gets rarer, " +
                'and casting every row instead costs 4-8x.',
            ]),
      ],
    };
  },
};
