/**
 * simulate throughput at concurrency 16 on the fixed flow, against the same transaction shape
 * run by pgbench (and by a bare pg pool) on the same server in the same run.
 */
import { fmt } from './dataset.mjs';
import { barePoolTps, pgbenchTps, removeBaselineUsers, seedBaselineUsers } from './intakeBaseline.mjs';

const CONCURRENCY = 16;
const BASELINE_SECONDS = 10;

export const simulateSection = {
  id: 'simulate',
  title: `simulate throughput at concurrency ${CONCURRENCY}`,
  async run({ database, url, rows, dist }) {
    const { simulate } = await import(dist('core/simulate/simulate.js'));
    const { inspectDatabase } = await import(dist('core/db/inspect.js'));
    const { silentLogger } = await import(dist('core/logger.js'));
    const { INTAKE_USER_LOCK } = await import(dist('core/db/locks.js'));
    const { openDatabase } = await import(dist('core/db/database.js'));
    const { serverTarget } = await import(dist('core/db/connection.js'));
    const { UUID_SPELLING_SQL } = await import(dist('core/uuid.js'));
    await database.pool.query(
      'TRUNCATE mega_agent.cases, mega_agent.case_intake_progress, mega_agent.case_memory, mega_agent.bot_user_context',
    );
    const users = Math.min(3000, Math.max(200, Math.floor(rows / 300)));

    // The baselines run before and after simulate (the machine's load drifts); their mean counts.
    await seedBaselineUsers(database.pool, users);
    const baseline = {
      url,
      users,
      concurrency: CONCURRENCY,
      seconds: BASELINE_SECONDS / 2,
      lockNamespace: INTAKE_USER_LOCK,
      uuidPattern: UUID_SPELLING_SQL,
    };
    const measureBaselines = async () => ({ pgbench: await pgbenchTps(baseline), bare: await barePoolTps(baseline) });
    const before = await measureBaselines();

    // As `caseguard simulate` opens it: a pipelining pool of concurrency + 1 connections.
    const intake = await openDatabase(serverTarget(url), { log: silentLogger, poolSize: CONCURRENCY + 1, pipeline: true });
    const report = await simulate(intake.db, await inspectDatabase(intake.db), silentLogger, {
      users,
      concurrency: CONCURRENCY,
      seed: 1,
      legacyRate: 0,
      crashRate: 0,
    }).finally(() => intake.close());
    const after = await measureBaselines();
    await removeBaselineUsers(database.pool);
    const mean = (x, y) => (x === undefined || y === undefined ? undefined : (x + y) / 2);
    const pgbench = mean(before.pgbench, after.pgbench);
    const bare = mean(before.bare, after.bare);
    const rate = report.completedPerSecond;
    const calls = Object.values(report.latency).reduce((n, s) => n + s.count, 0);
    const callsPerSecond = calls / (report.durationMs / 1000);
    const reference = pgbench ?? bare;
    const referenceName = pgbench === undefined ? 'bare pg pool (pgbench not installed)' : 'pgbench';
    const ratio = callsPerSecond / reference;
    const met = ratio >= 1 && report.orphans.unexplained === 0 && report.errors === 0;
    const baselineLine = `baseline, the answer transaction at concurrency ${CONCURRENCY}: ${pgbench === undefined ? 'pgbench not installed' : `pgbench ${pgbench.toFixed(0)} tps`}, bare pg pool ${bare.toFixed(0)} tps`;
    return {
      lines: [
        `${report.users} users, ${report.outcomes.completed} completed in ${fmt(report.durationMs)}: ${callsPerSecond.toFixed(0)} handler calls/s, ${rate.toFixed(0)} completed intakes/s; orphans ${report.orphans.total}, errors ${report.errors}`,
        baselineLine,
        `simulate / ${referenceName}: ${ratio.toFixed(2)}x (goal >= 1.0x) ${met ? 'met' : 'MISSED'}`,
      ],
      markdown: [
        '| users | completed | duration | handler calls/s | completed intakes/s | text p50 / p99 | orphans | errors |',
        '|---|---|---|---|---|---|---|---|',
        `| ${report.users} | ${report.outcomes.completed} | ${fmt(report.durationMs)} | **${callsPerSecond.toFixed(0)}** | ${rate.toFixed(0)} | ${report.latency.text?.p50Ms} / ${report.latency.text?.p99Ms} ms | ${report.orphans.total} | ${report.errors} |`,
        '',
        `${baselineLine[0].toUpperCase()}${baselineLine.slice(1)} (the mean of ${BASELINE_SECONDS / 2} s before and ${BASELINE_SECONDS / 2} s after simulate).`,
        '',
        `simulate handler calls/s over ${referenceName} tps: **${ratio.toFixed(2)}x** (goal >= 1.0x): ${met ? 'met' : 'missed'}.`,
      ],
    };
  },
};
