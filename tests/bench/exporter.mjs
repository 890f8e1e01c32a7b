/**
 * The exporter's refresh at scale: one snapshot (the seven checks, the funnel over 14 days, the
 * recoveries) against scan alone, on the same data; then the funnel and recovery counts again
 * with the two indexes the README suggests.
 */
import { buildDataset, fmt, median } from './dataset.mjs';

export const exporterSection = {
  id: 'exporter',
  title: 'exporter refresh: checks, funnel and recoveries vs scan',
  async run({ database, rows, dist, log }) {
    const { scan } = await import(dist('core/scan/scan.js'));
    const { inspectDatabase } = await import(dist('core/db/inspect.js'));
    const { readSnapshot } = await import(dist('core/monitor/snapshot.js'));
    const { readFunnel } = await import(dist('core/monitor/funnel.js'));
    const { readRecoveries } = await import(dist('core/monitor/recoveries.js'));
    const built = await buildDataset(database.pool, rows);
    // Intakes spread over 60 days in every status; 1% of the cases re-created by the guard or recover.
    await database.pool.query(`
      UPDATE mega_agent.case_intake_progress SET
        created_at = now() - random() * interval '60 days',
        status = (ARRAY['in_progress', 'completed', 'completed', 'cancelled'])[1 + floor(random() * 4)::int]`);
    await database.pool.query(`UPDATE mega_agent.case_intake_progress SET updated_at = created_at + random() * interval '2 hours'`);
    await database.pool.query(`
      UPDATE mega_agent.cases SET metadata = jsonb_build_object('recovered_by', CASE WHEN random() < 0.5 THEN 'ensure_case_exists' ELSE 'caseguard' END),
             created_at = now() - random() * interval '60 days'
       WHERE random() < 0.01`);
    await database.pool.query('VACUUM ANALYZE mega_agent.cases, mega_agent.case_intake_progress');
    log(`dataset: ${rows} cases, ${rows} progress rows over 60 days, ${built.orphans} orphans`);
    const shape = await inspectDatabase(database.db);
    const options = { databaseName: 'bench', days: 14, abandonedAfterMs: 86_400_000, statementTimeout: '0' };
    const scanMs = await median(3, () =>
      scan(database.db, shape, { databaseName: 'bench', limit: 0, gate: { failOn: 'error', maxFindings: 0 } }),
    );
    let snapshot;
    const snapshotMs = await median(3, async () => (snapshot = await readSnapshot(database.db, options)));
    const orphans = snapshot.scan.checks.find((c) => c.id === 'orphaned_progress').count;
    if (orphans !== built.orphans) throw new Error(`bench: the snapshot found ${orphans} orphans, expected ${built.orphans}`);
    const funnelMs = await median(3, () => readFunnel(database.db, options));
    const recoveriesMs = await median(3, () => readRecoveries(database.db, { days: 14, journal: true }));
    await database.pool.query(`CREATE INDEX bench_progress_created ON mega_agent.case_intake_progress (created_at)`);
    await database.pool.query(`CREATE INDEX bench_cases_recovered ON mega_agent.cases (created_at) WHERE metadata ? 'recovered_by'`);
    await database.pool.query('ANALYZE mega_agent.cases, mega_agent.case_intake_progress');
    const funnelIdxMs = await median(3, () => readFunnel(database.db, options));
    const recoveriesIdxMs = await median(3, () => readRecoveries(database.db, { days: 14, journal: true }));
    await database.pool.query('DROP INDEX mega_agent.bench_progress_created, mega_agent.bench_cases_recovered');
    const ratio = snapshotMs / scanMs;
    const lines = [
      `scan ${fmt(scanMs)}; whole refresh ${fmt(snapshotMs)}: ${ratio.toFixed(2)}x scan`,
      `funnel (14 of 60 days) ${fmt(funnelMs)}, with an index on progress(created_at) ${fmt(funnelIdxMs)}`,
      `recoveries ${fmt(recoveriesMs)}, with the partial index on cases ${fmt(recoveriesIdxMs)}`,
    ];
    return {
      lines,
      markdown: [
        `${rows.toLocaleString('en')} cases, ${rows.toLocaleString('en')} progress rows started over 60 days, 1% of cases recovered; median of 3.`,
        '',
        "| read | without indexes | with the README's indexes |",
        '|---|---|---|',
        `| scan (the seven checks) | ${fmt(scanMs)} | |`,
        `| one exporter refresh (checks, funnel, recoveries in one snapshot) | ${fmt(snapshotMs)} (**${ratio.toFixed(2)}x** scan) | |`,
        `| the funnel, 14 days | ${fmt(funnelMs)} | ${fmt(funnelIdxMs)} |`,
        `| the recoveries | ${fmt(recoveriesMs)} | ${fmt(recoveriesIdxMs)} |`,
      ],
    };
  },
};
