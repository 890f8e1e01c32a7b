/** recover under pressure: a held lock, a killed connection, the live bot writing meanwhile. */
import pg from 'pg';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { inspectDatabase } from '../../src/core/db/inspect.js';
import { BusyError, ConnectionError } from '../../src/core/errors.js';
import { createIntakeHandlers } from '../../src/core/intake/handlers.js';
import { silentLogger } from '../../src/core/logger.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { seedControls } from '../helpers/fixtures.js';
import { recoveredCaseCount, seedOrphans } from '../helpers/orphans.js';
import { runRecover, runScan } from '../helpers/recover.js';

describe('recover safety', () => {
  let t: TestDatabase;
  beforeEach(async () => {
    t = await createTestDatabase();
    await seedControls(t.pool);
  });
  afterEach(() => t?.drop());

  it('a second recover while one holds the lock fails with BusyError naming the holder', async () => {
    const holder = await t.pool.connect();
    try {
      await holder.query("SET application_name = 'another-recover'");
      await holder.query('SELECT pg_advisory_lock($1, $2)', [0x6367, 2]);
      const error = await runRecover(t, { lockWaitMs: 300 }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(BusyError);
      expect((error as BusyError).message).toMatch(/another-recover/);
      expect((error as BusyError).exitCode).toBe(5);
    } finally {
      holder.release();
    }
  });

  it('a connection killed mid-run keeps the committed batches; the rerun completes without duplicates', async () => {
    await seedOrphans(t.pool, 600);
    let killed = false;
    const first = await runRecover(t, {
      batchSize: 50,
      onBatch: async (e) => {
        if (e.batch !== 3 || killed) return;
        killed = true;
        // Block the next batch behind a table lock, then terminate it from outside while it waits.
        const blocker = await t.pool.connect();
        await blocker.query('BEGIN');
        await blocker.query('LOCK TABLE mega_agent.cases IN EXCLUSIVE MODE');
        void (async () => {
          try {
            for (let i = 0; i < 200; i++) {
              const waiting = await t.pool.query(
                "SELECT pg_terminate_backend(pid) AS ok FROM pg_stat_activity WHERE datname = current_database() AND application_name LIKE 'caseguard %' AND wait_event_type = 'Lock'",
              );
              if (waiting.rows.length > 0) break;
              await new Promise((r) => setTimeout(r, 20));
            }
          } finally {
            await blocker.query('ROLLBACK');
            blocker.release();
          }
        })();
      },
    }).catch((e: unknown) => e);
    expect(killed).toBe(true);
    expect(first).toBeInstanceOf(ConnectionError);
    const afterKill = await recoveredCaseCount(t.pool);
    expect(afterKill.cases).toBeGreaterThanOrEqual(150);
    expect(afterKill.cases).toBeLessThan(600);
    const second = await runRecover(t, { batchSize: 50 });
    expect(second.status).toBe('completed');
    expect(second.applied.create_case).toBe(600 - afterKill.cases);
    expect(await recoveredCaseCount(t.pool)).toEqual({ cases: 600, distinct: 600 });
    const items = await t.pool.query(
      "SELECT count(*)::int AS n, count(DISTINCT id)::int AS d, sum(0)::int AS z FROM caseguard.run_items i CROSS JOIN LATERAL unnest(i.case_ids) id WHERE action = 'case_created'",
    );
    expect(items.rows[0]).toEqual({ n: 600, d: 600, z: 0 });
    const statuses = await t.pool.query('SELECT status FROM caseguard.runs ORDER BY run_id');
    expect(statuses.rows.map((r) => r.status)).toEqual(['failed', 'completed']);
  });

  it('the live bot re-creating cases meanwhile causes no error and no duplicate', async () => {
    await seedOrphans(t.pool, 400, 'live');
    const handlers = createIntakeHandlers({ db: t.database.db, shape: await inspectDatabase(t.database.db), log: silentLogger });
    let stop = false;
    // The live bot: orphaned users coming back (the guard re-creates their case) and new users
    // starting intakes, while recover runs.
    const bot = (async () => {
      let served = 0;
      for (let i = 1; !stop && i <= 400; i++) {
        const reply = await handlers.resume(`live-${401 - i}`);
        if (reply.outcome !== 'shown') throw new Error(`unexpected ${reply.outcome}`);
        const started = await handlers.start(`new-${i}`);
        if (started.outcome !== 'started') throw new Error(`unexpected ${started.outcome}`);
        served++;
      }
      return served;
    })();
    const result = await runRecover(t, { batchSize: 10 });
    stop = true;
    const served = await bot;
    expect(served).toBeGreaterThan(0);
    expect(result.status).toBe('completed');
    const all = await t.pool.query(
      "SELECT count(*)::int AS n, count(DISTINCT case_id)::int AS d FROM mega_agent.cases WHERE user_id LIKE 'live-%'",
    );
    expect(all.rows[0]).toEqual({ n: 400, d: 400 });
    expect(result.applied.create_case + result.skipped).toBe(result.plan.counts.create_case);
    const fresh = await t.pool.query(
      "SELECT count(*)::int AS n, count(DISTINCT user_id)::int AS d FROM mega_agent.cases WHERE user_id LIKE 'new-%'",
    );
    expect(fresh.rows[0]).toEqual({ n: served, d: served });
    expect((await runScan(t)).summary.errors).toBe(0);
  });
});

describe('the journal', () => {
  it('tells a dead run from a live one by its own process identity, and the next run finalises the dead', async () => {
    const t = await createTestDatabase();
    try {
      const { listRuns } = await import('../../src/core/journal/journal.js');
      await t.pool.query(
        "INSERT INTO caseguard.runs (command, status, process) VALUES ('recover', 'running', 'caseguard recover deadbeef')",
      );
      expect((await listRuns(t.database.db, 1))[0]!.status).toBe('abandoned');
      // Someone else holding the run lock says nothing about this run: only its own sessions do.
      const other = await t.pool.connect();
      await other.query('SELECT pg_advisory_lock($1, $2)', [0x6367, 2]);
      expect((await listRuns(t.database.db, 1))[0]!.status).toBe('abandoned');
      await other.query('SELECT pg_advisory_unlock_all()');
      other.release();
      const live = new pg.Client({ connectionString: t.url, application_name: 'caseguard recover deadbeef' });
      await live.connect();
      try {
        expect((await listRuns(t.database.db, 1))[0]!.status).toBe('running');
        // A run whose process still has sessions (its lock session died) keeps a new run out.
        await expect(runRecover(t)).rejects.toThrow(/run \d+ \(caseguard recover, caseguard recover deadbeef\) is still running/);
      } finally {
        await live.end();
      }
      const next = await runRecover(t);
      expect(next.status).toBe('nothing_to_do');
      const rows = await t.pool.query('SELECT status, finished_at IS NOT NULL AS finished FROM caseguard.runs ORDER BY run_id');
      expect(rows.rows).toEqual([
        { status: 'abandoned', finished: true },
        { status: 'completed', finished: true },
      ]);
    } finally {
      await t.drop();
    }
  });
});
