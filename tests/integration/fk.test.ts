/** fk status, plan, add (both strategies), resume, lock retries, drop; on a real server. */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { inspectDatabase } from '../../src/core/db/inspect.js';
import { fkPlan, fkStatus } from '../../src/core/fk/fk.js';
import { REFERENCES } from '../../src/core/fk/names.js';
import { readFkState } from '../../src/core/fk/state.js';
import { BlockedError, BusyError, UsageError } from '../../src/core/errors.js';
import { createIntakeHandlers } from '../../src/core/intake/handlers.js';
import { silentLogger } from '../../src/core/logger.js';
import { createTestDatabase, tableChecksum, type TestDatabase } from '../helpers/db.js';
import { id, seedControls, seedDamage } from '../helpers/fixtures.js';
import { runFkAdd, runFkDrop, TIMING } from '../helpers/fk.js';
import { completeIntake } from '../helpers/intake.js';
import { runRecover, runScan, runUndo } from '../helpers/recover.js';

async function proveConstraint(t: TestDatabase) {
  const client = await t.pool.connect();
  try {
    await client.query('BEGIN');
    await client.query('SAVEPOINT violate');
    const error = await client
      .query("INSERT INTO mega_agent.case_intake_progress (user_id, case_id) VALUES ('u-violating', $1)", [id(999)])
      .catch((e: { code?: string; constraint?: string }) => e);
    await client.query('ROLLBACK TO SAVEPOINT violate');
    await client.query('ROLLBACK');
    return error as { code?: string; constraint?: string };
  } finally {
    client.release();
  }
}

describe.each(['online', 'rewrite'] as const)('fk add --strategy %s', (strategy) => {
  let t: TestDatabase;
  beforeEach(async () => {
    t = await createTestDatabase();
    await seedControls(t.pool);
    await t.pool.query(
      `INSERT INTO mega_agent.cases (case_id, user_id, title) SELECT ('abcdef00-0000-4000-b000-' || lpad(g::text, 12, '0'))::uuid, 'bulk-' || g, 'x' FROM generate_series(1, 450) g;
       INSERT INTO mega_agent.case_intake_progress (user_id, case_id) SELECT user_id, case_id::text FROM mega_agent.cases WHERE user_id LIKE 'bulk-%'`,
    );
  });
  afterEach(() => t?.drop());

  it('converts the column, indexes it, adds and validates the FK; controls and data survive', async () => {
    const before = await t.pool.query(
      'SELECT user_id, case_id::text, answers, created_at FROM mega_agent.case_intake_progress ORDER BY user_id',
    );
    const result = await runFkAdd(t, { strategy });
    expect(result.steps.every((s) => s.status === 'done')).toBe(true);
    const state = (await readFkState(t.database.db))!;
    expect(state.columnType).toBe('uuid');
    expect(state.foreignKey).toEqual({ name: 'fk_case_intake_progress_case', validated: true });
    expect(state.caseIdIndex?.valid).toBe(true);
    expect(state.primaryKey?.columns).toEqual(['user_id', 'case_id']);
    expect(state.hasShadow).toBe(false);
    expect(state.hasTrigger).toBe(false);
    const after = await t.pool.query(
      'SELECT user_id, case_id::text, answers, created_at FROM mega_agent.case_intake_progress ORDER BY user_id',
    );
    expect(after.rows).toEqual(before.rows);
    const violation = await proveConstraint(t);
    expect(violation).toMatchObject({ code: '23503', constraint: 'fk_case_intake_progress_case' });
    const shape = await inspectDatabase(t.database.db);
    expect(shape).toMatchObject({ shape: 'uuid', foreignKey: { validated: true, onDeleteCascade: true } });
    // the intake flow, scan and recover keep working on the migrated shape
    const handlers = createIntakeHandlers({ db: t.database.db, shape, log: silentLogger });
    expect((await completeIntake(handlers, 'after-fk')).outcome).toBe('completed');
    expect((await runScan(t)).summary.gate).toBe('passed');
    expect((await runRecover(t)).status).toBe('nothing_to_do');
    // a rerun has nothing left to do
    const again = await runFkAdd(t, { strategy });
    expect(again.steps.every((s) => s.status === 'skipped')).toBe(true);
  });

  it('drop removes the constraint; --revert-type returns the column to text', async () => {
    await runFkAdd(t, { strategy });
    await runFkDrop(t, false);
    expect((await readFkState(t.database.db))!.foreignKey).toBeUndefined();
    await runFkDrop(t, true);
    const state = (await readFkState(t.database.db))!;
    expect(state.columnType).toBe('text');
    expect((await inspectDatabase(t.database.db)).shape).toBe('legacy');
  });
});

describe('fk add safety', () => {
  let t: TestDatabase;
  beforeEach(async () => {
    t = await createTestDatabase();
  });
  afterEach(() => t?.drop());

  it('refuses while blocking findings exist, naming recover (exit 1), and changes nothing', async () => {
    await seedDamage(t.pool);
    const before = await tableChecksum(t.pool, 'mega_agent.case_intake_progress');
    const error = await runFkAdd(t).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(BlockedError);
    expect((error as BlockedError).exitCode).toBe(1);
    expect((error as Error).message).toMatch(/3 orphaned_progress, 4 invalid_case_id, 2 duplicate_progress.*caseguard recover/);
    expect(await tableChecksum(t.pool, 'mega_agent.case_intake_progress')).toBe(before);
    await runRecover(t, { quarantine: true });
    const status = await fkStatus(t.database, await inspectDatabase(t.database.db));
    expect(status.blockers).toEqual({
      orphaned_progress: 0,
      invalid_case_id: 0,
      duplicate_progress: 0,
      orphaned_memory: 0,
      dangling_active_case: 0,
    });
    expect((await runFkAdd(t)).steps.length).toBeGreaterThan(5);
  });

  it('resumes after a step fails midway', async () => {
    await seedControls(t.pool);
    const error = await runFkAdd(t, {
      afterStep: (step) => {
        if (step === 'progress.backfill') throw new Error('injected failure after the backfill');
      },
    }).catch((e: unknown) => e);
    expect((error as Error).message).toMatch(/injected/);
    const mid = (await readFkState(t.database.db))!;
    expect(mid).toMatchObject({ columnType: 'text', hasShadow: true, hasTrigger: true });
    const resumed = await runFkAdd(t);
    expect(resumed.steps.filter((s) => s.status === 'skipped').map((s) => s.id)).toEqual([
      'progress.add_shadow_column',
      'progress.sync_trigger',
    ]);
    expect((await readFkState(t.database.db))!.foreignKey?.validated).toBe(true);
    const runs = await t.pool.query("SELECT status FROM caseguard.runs WHERE command = 'fk add' ORDER BY run_id");
    expect(runs.rows.map((r) => r.status)).toEqual(['failed', 'completed']);
  });

  it('a transaction holding a lock: retries, then exit 5 with nothing half-done; resumes later', async () => {
    await seedControls(t.pool);
    const holder = await t.pool.connect();
    try {
      await holder.query('BEGIN');
      await holder.query('LOCK TABLE mega_agent.case_intake_progress IN ACCESS SHARE MODE');
      const retries: Array<{ attempt: number; lock_timeout_ms: number }> = [];
      const error = await runFkAdd(t, {
        timing: { ...TIMING, lockTimeoutMs: 40, maxLockTimeoutMs: 80, maxAttempts: 4 },
        log: {
          ...silentLogger,
          warn: (o: object) => void retries.push(o as (typeof retries)[number]),
          child() {
            return this;
          },
        } as never,
      }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(BusyError);
      expect((error as BusyError).message).toMatch(/progress.add_shadow_column could not get its locks in 4 attempt\(s\)/);
      // short attempts, each lock_timeout half as long again as the last, up to the ceiling
      expect(retries.map((r) => [r.attempt, r.lock_timeout_ms])).toEqual([
        [1, 40],
        [2, 60],
        [3, 80],
      ]);
      const state = (await readFkState(t.database.db))!;
      expect(state).toMatchObject({ columnType: 'text', hasShadow: false });
    } finally {
      await holder.query('ROLLBACK');
      holder.release();
    }
    expect((await runFkAdd(t)).steps[0]).toMatchObject({ id: 'progress.add_shadow_column', status: 'done' });
  });

  it("the retries stop when the step's budget is spent, whatever the attempts left", async () => {
    const holder = await t.pool.connect();
    try {
      await holder.query('BEGIN');
      await holder.query('LOCK TABLE mega_agent.case_intake_progress IN ACCESS SHARE MODE');
      const t0 = performance.now();
      const error = await runFkAdd(t, {
        timing: { ...TIMING, lockTimeoutMs: 50, maxLockTimeoutMs: 100, retryBudgetMs: 700, maxAttempts: 1000 },
      }).catch((e: unknown) => e);
      const elapsed = performance.now() - t0;
      expect(error).toBeInstanceOf(BusyError);
      expect(elapsed).toBeLessThan(5000);
      expect((error as BusyError).message).toMatch(/--lock-retry-budget/);
    } finally {
      await holder.query('ROLLBACK');
      holder.release();
    }
  });

  it('the plan states the steps, locks and SQL, and what changes for writers', async () => {
    const state = (await readFkState(t.database.db))!;
    const plan = fkPlan([state], 'online', TIMING, 1000);
    expect(plan.steps.map((s) => s.id)).toEqual([
      ...[
        'add_shadow_column',
        'sync_trigger',
        'backfill',
        'not_null_check',
        'validate_not_null',
        'unique_index',
        'swap',
        'index',
        'add_fk',
        'validate_fk',
      ].map((id) => `progress.${id}`),
    ]);
    // the retry schedule of TIMING, in the script's DO blocks
    expect(plan.script).toMatch(/least\(2000, round\(100 \* 1\.5 \^ cg_attempt\)\)/);
    expect(plan.script).toMatch(/EXCEPTION WHEN lock_not_available OR deadlock_detected/);
    expect(plan.script).toMatch(/COMMIT;\n {2}END LOOP;/);
    expect(plan.script).toMatch(/case_id becomes the table's last column \(it is column 2 now\)/);
    expect(plan.script).toMatch(/CREATE UNIQUE INDEX CONCURRENTLY/);
    expect(plan.script).toMatch(/NOT VALID/);
    expect(plan.script).toMatch(/rejected \(SQLSTATE 22P02\)/);
    const rewrite = fkPlan([state], 'rewrite', TIMING, 1000);
    expect(rewrite.script).toMatch(/ACCESS EXCLUSIVE on case_intake_progress for the whole rewrite/);
  });
});

describe('the memory and active-case references', () => {
  let t: TestDatabase;
  beforeEach(async () => {
    t = await createTestDatabase();
    await seedControls(t.pool);
  });
  afterEach(() => t?.drop());

  it('--reference limits fk add to the references named; the others are untouched', async () => {
    const result = await runFkAdd(t, { only: ['memory'] });
    expect(result.references).toEqual(['memory']);
    expect(result.steps.every((s) => s.id.startsWith('memory.'))).toBe(true);
    const states = await Promise.all(REFERENCES.map((r) => readFkState(t.database.db, r)));
    expect(states.map((s) => [s!.reference.id, s!.columnType, s!.foreignKey?.validated ?? false])).toEqual([
      ['progress', 'text', false],
      ['memory', 'uuid', true],
      ['active_case', 'text', false],
    ]);
  });

  it('memory cascades and pointers are cleared when their case goes; a memory row without its case is refused', async () => {
    await runFkAdd(t);
    const shape = await inspectDatabase(t.database.db);
    expect(shape).toMatchObject({ shape: 'uuid', memoryUuid: true, pointerUuid: true });
    await t.pool.query('DELETE FROM mega_agent.cases WHERE case_id = $1', [id(1)]);
    const left = await t.pool.query(
      `SELECT (SELECT count(*)::int FROM mega_agent.case_memory WHERE case_id = $1) AS memory,
              (SELECT active_case_id FROM mega_agent.bot_user_context WHERE user_id = 'control-1') AS pointer,
              (SELECT count(*)::int FROM mega_agent.case_memory) AS all_memory`,
      [id(1)],
    );
    expect(left.rows[0]).toEqual({ memory: 0, pointer: null, all_memory: 4 });
    await expect(
      t.pool.query("INSERT INTO mega_agent.case_memory (case_id, user_id, kind, content) VALUES ($1, 'x', 'note', '{}')", [id(999)]),
    ).rejects.toMatchObject({ code: '23503', constraint: 'fk_case_memory_case' });
    // scan, the intake flow and recover work on the uuid columns
    expect((await runScan(t)).summary.gate).toBe('passed');
    const handlers = createIntakeHandlers({ db: t.database.db, shape, log: silentLogger });
    expect((await completeIntake(handlers, 'after-three')).outcome).toBe('completed');
    expect((await runRecover(t)).status).toBe('nothing_to_do');
  });

  it('refuses the memory FK while memory orphans exist, and the pointer FK while pointers dangle', async () => {
    await t.pool.query("INSERT INTO mega_agent.case_memory (case_id, user_id, kind, content) VALUES ($1, 'x', 'note', '{}')", [id(777)]);
    const error = await runFkAdd(t, { only: ['memory', 'active_case'] }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(BlockedError);
    expect((error as Error).message).toMatch(/1 orphaned_memory/);
    // progress alone is not blocked by memory
    expect((await runFkAdd(t, { only: ['progress'] })).references).toEqual(['progress']);
  });

  it('recover --undo refuses once the memory FK would cascade to the memory of the cases it created', async () => {
    await t.pool.query("INSERT INTO mega_agent.case_memory (case_id, user_id, kind, content) VALUES ($1, 'u-mem', 'note', '{}')", [
      id(200),
    ]);
    const run = await runRecover(t);
    await runFkAdd(t, { only: ['memory'] });
    const before = await tableChecksum(t.pool, 'mega_agent.case_memory');
    const error = await runUndo(t, run.runId!).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(UsageError);
    expect((error as Error).message).toMatch(new RegExp(`deleting case ${id(200)} would delete its memory or clear active-case pointers`));
    expect(await tableChecksum(t.pool, 'mega_agent.case_memory')).toBe(before);
  });
});
