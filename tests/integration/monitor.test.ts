import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDatabase } from '../../src/core/db/database.js';
import { serverTarget } from '../../src/core/db/connection.js';
import { silentLogger } from '../../src/core/logger.js';
import { readFunnel } from '../../src/core/monitor/funnel.js';
import { readRecoveries } from '../../src/core/monitor/recoveries.js';
import { readSnapshot } from '../../src/core/monitor/snapshot.js';
import { createReaderRole, createTestDatabase, tableChecksum, type TestDatabase } from '../helpers/db.js';
import { expected, seedDamage } from '../helpers/fixtures.js';
import { FUNNEL, seedFunnel } from '../helpers/monitor.js';
import { runScan } from '../helpers/recover.js';

const snapshotOptions = (t: TestDatabase) => ({
  databaseName: t.name,
  days: FUNNEL.days,
  abandonedAfterMs: FUNNEL.abandonedAfterMs,
  statementTimeout: '30s',
});

describe('monitoring reads', () => {
  let t: TestDatabase;
  beforeAll(async () => {
    t = await createTestDatabase();
    await seedFunnel(t.pool);
  });
  afterAll(async () => t.drop());

  it('counts the funnel by day: started, completed, cancelled, abandoned, in progress', async () => {
    const funnel = await readFunnel(t.database.db, FUNNEL);
    expect(funnel.days).toHaveLength(FUNNEL.days);
    expect(funnel.days.map(({ day: _day, ...counts }) => counts)).toEqual(FUNNEL.byDay);
    // consecutive UTC days, today last
    const today = new Date().toISOString().slice(0, 10);
    expect(funnel.days.at(-1)!.day).toBe(today);
    expect(funnel.totals).toEqual(FUNNEL.totals);
    expect(funnel.completionRatio).toBeCloseTo(FUNNEL.ratio, 10);
    expect(funnel.completionSeconds.p50).toBeCloseTo(FUNNEL.p50, 6);
    expect(funnel.completionSeconds.p95).toBeCloseTo(FUNNEL.p95, 6);
  });

  it('a shorter abandonment threshold moves idle intakes from in progress to abandoned', async () => {
    const funnel = await readFunnel(t.database.db, { days: FUNNEL.days, abandonedAfterMs: 30 * 60_000 });
    // yesterday's, touched an hour ago, is now abandoned; today's, touched now, is not
    expect(funnel.totals.abandoned).toBe(FUNNEL.totals.abandoned + 1);
    expect(funnel.totals.inProgress).toBe(FUNNEL.totals.inProgress - 1);
  });

  it('an empty window has zero rows per day and no ratio', async () => {
    const empty = await createTestDatabase();
    try {
      const funnel = await readFunnel(empty.database.db, { days: 7, abandonedAfterMs: 1000 });
      expect(funnel.days).toHaveLength(7);
      expect(funnel.totals.started).toBe(0);
      expect(funnel.completionRatio).toBeNull();
      expect(funnel.completionSeconds).toEqual({ p50: null, p95: null });
    } finally {
      await empty.drop();
    }
  });

  it('counts recovered cases by source, in all and by day, and recover runs by status', async () => {
    await t.pool.query(`
      INSERT INTO caseguard.runs (command, dry_run, status, process) VALUES
        ('recover', false, 'completed', 'gone 1'), ('recover', false, 'completed', 'gone 2'),
        ('recover', false, 'failed', 'gone 3'), ('recover', false, 'running', 'caseguard recover deadbeef'),
        ('recover', true, 'completed', 'gone 4'), ('fk add', false, 'failed', 'gone 5')`);
    const report = await readRecoveries(t.database.db, { days: FUNNEL.days, journal: true });
    const today = new Date().toISOString().slice(0, 10);
    expect(report.cases.ensure_case.total).toBe(FUNNEL.recovered.ensure_case.total);
    expect(report.cases.ensure_case.byDay).toEqual({ [today]: FUNNEL.recovered.ensure_case.today });
    expect(report.cases.recover).toEqual({ total: 1, byDay: { [today]: 1 } });
    // the running one has no session: abandoned; dry runs and other commands are not counted
    expect(report.recoverRuns).toEqual({ completed: 2, failed: 1, abandoned: 1 });
    await t.pool.query('DELETE FROM caseguard.runs');
  });

  it('reads the checks in the same snapshot with the numbers scan reports, and writes nothing', async () => {
    const damaged = await createTestDatabase();
    try {
      await seedDamage(damaged.pool);
      const before = await tableChecksum(damaged.pool, 'mega_agent.case_intake_progress');
      const snapshot = await readSnapshot(damaged.database.db, snapshotOptions(damaged));
      const scan = await runScan(damaged);
      for (const check of snapshot.scan.checks) {
        expect(check.count).toBe(expected[check.id]);
        expect(check.count).toBe(scan.checks.find((c) => c.id === check.id)!.count);
      }
      expect(snapshot.scan.summary.missingCases).toBe(expected.missingCases);
      // the fixture's progress rows were all created now: today's started
      expect(snapshot.funnel.days.at(-1)!.started).toBe(
        Number((await damaged.pool.query('SELECT count(*) FROM mega_agent.case_intake_progress')).rows[0].count),
      );
      expect(await tableChecksum(damaged.pool, 'mega_agent.case_intake_progress')).toBe(before);
    } finally {
      await damaged.drop();
    }
  });

  it('works for a role with only USAGE and SELECT on mega_agent: no journal, no failure', async () => {
    const role = await createReaderRole(t, 'cg_monitor');
    try {
      const reader = await openDatabase(serverTarget(role.url), { log: silentLogger });
      try {
        const snapshot = await readSnapshot(reader.db, snapshotOptions(t));
        expect(snapshot.funnel.totals).toEqual(FUNNEL.totals);
        expect(snapshot.recoveries.cases.ensure_case.total).toBe(FUNNEL.recovered.ensure_case.total);
        expect(snapshot.recoveries.recoverRuns).toBeUndefined();
      } finally {
        await reader.close();
      }
    } finally {
      await role.drop();
    }
  });
});
