/**
 * The one run lock: recover, fk and migrate exclude each other; a run whose lock session dies
 * stops before its next write and keeps every other run out until it has stopped.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { serverTarget } from '../../src/core/db/connection.js';
import { openDatabase } from '../../src/core/db/database.js';
import { RUN_LOCK } from '../../src/core/db/locks.js';
import { migrateDatabase } from '../../src/core/db/migrate.js';
import { BusyError, ConnectionError, InterruptedError } from '../../src/core/errors.js';
import { silentLogger } from '../../src/core/logger.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { runFkAdd } from '../helpers/fk.js';
import { seedControls } from '../helpers/fixtures.js';
import { recoveredCaseCount, seedOrphans } from '../helpers/orphans.js';
import { runRecover } from '../helpers/recover.js';

describe('the run lock', () => {
  let t: TestDatabase;
  beforeEach(async () => {
    t = await createTestDatabase();
    await seedControls(t.pool);
  });
  afterEach(() => t?.drop());

  /** The backend pid holding the run lock in this database, or undefined. */
  async function lockHolderPid(): Promise<number | undefined> {
    const r = await t.pool.query(
      `SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND classid = $1 AND objid = $2
          AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`,
      [RUN_LOCK[0], RUN_LOCK[1]],
    );
    return r.rows[0]?.pid;
  }

  it('a run whose lock session dies stops before its next batch (exit 3); a second run in that window is busy (exit 5)', async () => {
    await seedOrphans(t.pool, 500);
    let second: unknown;
    let batchesAfterKill = 0;
    let killed = false;
    const first = await runRecover(t, {
      batchSize: 50,
      onBatch: async (e) => {
        if (killed) batchesAfterKill++;
        if (e.batch !== 2 || killed) return;
        const pid = await lockHolderPid();
        expect(pid).toBeDefined();
        await t.pool.query('SELECT pg_terminate_backend($1)', [pid]);
        killed = true;
        // The first process is still alive (it has other sessions): another process's recover must wait.
        const other = await openDatabase(serverTarget(t.url), { log: silentLogger, applicationName: 'caseguard recover' });
        try {
          second = await runRecover({ ...t, database: other }, { lockWaitMs: 0 }).catch((error: unknown) => error);
        } finally {
          await other.close();
        }
      },
    }).catch((error: unknown) => error);
    expect(killed).toBe(true);
    expect(first).toBeInstanceOf(ConnectionError);
    expect((first as ConnectionError).exitCode).toBe(3);
    expect((first as Error).message).toMatch(/run lock was lost.*stopped before its next write/);
    expect(batchesAfterKill).toBe(0);
    expect(second).toBeInstanceOf(BusyError);
    expect((second as Error).message).toMatch(/is still running although its lock session ended/);
    expect((await recoveredCaseCount(t.pool)).cases).toBe(100);
    const runs = await t.pool.query('SELECT status, error FROM caseguard.runs ORDER BY run_id');
    expect(runs.rows).toHaveLength(1);
    expect(runs.rows[0].status).toBe('failed');
    expect(runs.rows[0].error).toMatch(/run lock was lost/);
    // Once the first has stopped, a rerun finishes the job.
    const rerun = await runRecover(t, { batchSize: 50 });
    expect(rerun.status).toBe('completed');
    expect(await recoveredCaseCount(t.pool)).toEqual({ cases: 500, distinct: 500 });
  });

  it('recover, fk add and migrate exclude each other through one lock', async () => {
    await seedOrphans(t.pool, 5);
    let during: { recover?: unknown; migrate?: unknown } = {};
    await runRecover(t); // no blockers left for the FK
    await runFkAdd(t, {
      afterStep: async (step) => {
        if (during.recover) return;
        during = {
          recover: await runRecover(t, { lockWaitMs: 0 }).catch((e: unknown) => e),
          migrate: await migrateDatabase(t.database, { what: 'caseguard migrate', waitMs: 0 }).catch((e: unknown) => e),
        };
        expect(step).toBeTruthy();
      },
    });
    expect(during.recover).toBeInstanceOf(BusyError);
    expect((during.recover as Error).message).toMatch(/caseguard recover cannot start: caseguard .* holds caseguard's run lock/);
    expect(during.migrate).toBeInstanceOf(BusyError);
    expect(await lockHolderPid()).toBeUndefined();
  });

  it('waits for a holder at most the bounded time, honours an abort while waiting, and takes the lock once free', async () => {
    const holder = await t.pool.connect();
    try {
      await holder.query('SELECT pg_advisory_lock($1, $2)', [RUN_LOCK[0], RUN_LOCK[1]]);
      const controller = new AbortController();
      setTimeout(() => controller.abort(), 150);
      const aborted = await runRecover(t, { lockWaitMs: 60_000, signal: controller.signal }).catch((e: unknown) => e);
      expect(aborted).toBeInstanceOf(InterruptedError);
      expect((aborted as Error).message).toMatch(/while waiting for the run lock; nothing was changed/);
      setTimeout(() => void holder.query('SELECT pg_advisory_unlock_all()'), 300);
      const waited = await runRecover(t, { lockWaitMs: 10_000, log: silentLogger });
      expect(waited.runId).toBeGreaterThan(0);
    } finally {
      holder.release();
    }
    expect(await lockHolderPid()).toBeUndefined();
  });
});
