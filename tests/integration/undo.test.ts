/** recover --undo and quarantine restore: back to the prior state exactly, or a refusal. */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { inspectDatabase } from '../../src/core/db/inspect.js';
import { InterruptedError, UsageError } from '../../src/core/errors.js';
import { silentLogger } from '../../src/core/logger.js';
import { applyUndo, planUndo } from '../../src/core/recover/undo.js';
import { createTestDatabase, toUuidShape, type TestDatabase } from '../helpers/db.js';
import { id, seedControls, seedDamage } from '../helpers/fixtures.js';
import { checksums, runRecover, runRestore, runScan, runUndo } from '../helpers/recover.js';

const snapshot = (t: TestDatabase) => checksums(t, 'all');

describe('undo and restore (legacy shape)', () => {
  let t: TestDatabase;
  beforeEach(async () => {
    t = await createTestDatabase();
    await seedDamage(t.pool);
  });
  afterEach(() => t?.drop());

  it('undo returns the database to its prior state exactly', async () => {
    const before = await snapshot(t);
    const run = await runRecover(t, { quarantine: true });
    expect(await snapshot(t)).not.toEqual(before);
    const shape = await inspectDatabase(t.database.db);
    const dry = await planUndo(t.database, shape, run.runId!);
    expect(dry.blockers).toEqual([]);
    expect(dry.summary).toMatch(/5 case\(s\) to delete, 8 spelling\(s\) to restore, 7 quarantined row\(s\)/);
    const undo = await runUndo(t, run.runId!);
    expect(undo).toMatchObject({ casesDeleted: 5, spellingsRestored: 8, rowsRestored: 7 });
    expect(await snapshot(t)).toEqual(before);
    await expect(runUndo(t, run.runId!)).rejects.toThrow(/undone already/);
  });

  it('refuses when a created case was changed since, and changes nothing', async () => {
    const run = await runRecover(t);
    await t.pool.query("UPDATE mega_agent.cases SET title = 'Renamed by staff' WHERE case_id = $1", [id(100)]);
    const after = await snapshot(t);
    const error = await runUndo(t, run.runId!).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(UsageError);
    expect((error as Error).message).toMatch(new RegExp(`case ${id(100)} was changed since`));
    expect(await snapshot(t)).toEqual(after);
  });

  it('refuses after a write that changed no value: any write since the run is a touch', async () => {
    const run = await runRecover(t);
    await t.pool.query('UPDATE mega_agent.cases SET title = title WHERE case_id = $1', [id(100)]);
    const after = await snapshot(t);
    const error = await runUndo(t, run.runId!).catch((e: unknown) => e);
    expect((error as Error).message).toMatch(new RegExp(`case ${id(100)} was changed since`));
    expect(await snapshot(t)).toEqual(after);
  });

  it('undoes a run journaled by an older version (one item per created case, with its row)', async () => {
    const before = await snapshot(t);
    const run = await runRecover(t);
    const rewritten = await t.pool.query(
      `WITH batch AS (DELETE FROM caseguard.run_items WHERE run_id = $1 AND action = 'case_created' RETURNING case_ids)
       INSERT INTO caseguard.run_items (run_id, action, check_id, table_name, row_key, after)
       SELECT $1, 'case_created', 'orphaned_progress', 'cases', jsonb_build_object('case_id', c.case_id), to_jsonb(c)
         FROM batch CROSS JOIN LATERAL unnest(batch.case_ids) AS created(id) JOIN mega_agent.cases c ON c.case_id = created.id`,
      [run.runId],
    );
    expect(rewritten.rowCount).toBe(5);
    // the old journal compares whole rows: a changed value refuses, the same value again does not
    await t.pool.query("UPDATE mega_agent.cases SET title = 'Renamed by staff' WHERE case_id = $1", [id(100)]);
    await expect(runUndo(t, run.runId!)).rejects.toThrow(new RegExp(`case ${id(100)} was changed since`));
    await t.pool.query("UPDATE mega_agent.cases SET title = 'Intake Session (Recovered)' WHERE case_id = $1", [id(100)]);
    const undo = await runUndo(t, run.runId!);
    expect(undo.casesDeleted).toBe(5);
    expect(await snapshot(t)).toEqual(before);
  });

  it('refuses when the bot wrote memory for a created case since', async () => {
    const run = await runRecover(t);
    await t.pool.query(
      "INSERT INTO mega_agent.case_memory (case_id, user_id, kind, content, created_at) VALUES ($1, 'u-orphan', 'note', '{}', now() + interval '1 second')",
      [id(100)],
    );
    await expect(runUndo(t, run.runId!)).rejects.toThrow(/memory or an active-case pointer written since/);
  });

  it('refuses after a pointer-only touch (a user resumed a recovered case) and changes nothing', async () => {
    const run = await runRecover(t);
    const after = await snapshot(t);
    await t.pool.query(
      "INSERT INTO mega_agent.bot_user_context (user_id, active_case_id, updated_at) VALUES ('u-resumer', $1, now() + interval '1 second')",
      [id(100)],
    );
    const touched = await snapshot(t);
    await expect(runUndo(t, run.runId!)).rejects.toThrow(
      new RegExp(`case ${id(100)} has progress, memory or an active-case pointer written since the run`),
    );
    expect(await snapshot(t)).toEqual(touched);
    expect(touched).not.toEqual(after);
  });

  it('restores any number of quarantined rows set-based (no cap), and undoes them back', async () => {
    await t.pool.query(
      "INSERT INTO mega_agent.case_intake_progress (user_id, case_id, current_block) SELECT 'bulk-' || g, 'not-a-uuid-' || g, 'contact' FROM generate_series(1, 3000) g",
    );
    const before = await snapshot(t);
    const run = await runRecover(t, { quarantine: true, duplicates: 'quarantine-all' });
    const quarantined = await t.pool.query('SELECT count(*)::int AS n FROM caseguard.quarantine WHERE run_id = $1', [run.runId]);
    expect(quarantined.rows[0].n).toBe(3000 + 8);
    const undo = await runUndo(t, run.runId!);
    expect(undo.rowsRestored).toBe(3008);
    expect(await snapshot(t)).toEqual(before);
  });

  it('a stop request cancels the undo statement in hand at once: the transaction rolls back whole, journaled interrupted', async () => {
    const run = await runRecover(t, { quarantine: true });
    const after = await snapshot(t);
    const shape = await inspectDatabase(t.database.db);
    const plan = await planUndo(t.database, shape, run.runId!);
    // The undo's transaction waits behind this lock (its safety checks read memory) until the stop.
    const blocker = await t.pool.connect();
    await blocker.query('BEGIN');
    await blocker.query('LOCK TABLE mega_agent.case_memory IN ACCESS EXCLUSIVE MODE');
    const controller = new AbortController();
    try {
      const undo = applyUndo(t.database, shape, plan, { log: silentLogger, signal: controller.signal }).catch((e: unknown) => e);
      for (let i = 0; ; i++) {
        const waiting = await t.pool.query(
          "SELECT count(*)::int AS n FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()",
        );
        if (waiting.rows[0].n > 0) break;
        if (i > 300) throw new Error('the undo never waited for the lock');
        await new Promise((r) => setTimeout(r, 20));
      }
      controller.abort();
      const error = await undo;
      expect(error).toBeInstanceOf(InterruptedError);
      expect((error as Error).message).toMatch(/rolled back: nothing was changed/);
    } finally {
      await blocker.query('ROLLBACK');
      blocker.release();
    }
    expect(await snapshot(t)).toEqual(after);
    const journaled = await t.pool.query("SELECT status FROM caseguard.runs WHERE command = 'recover --undo'");
    expect(journaled.rows).toEqual([{ status: 'interrupted' }]);
  });

  it('quarantine restore puts the rows back, once', async () => {
    // every row of the duplicate pair goes aside, so every one can come back
    const run = await runRecover(t, { quarantine: true, duplicates: 'quarantine-all' });
    expect((await runScan(t)).checks.find((c) => c.id === 'invalid_case_id')!.count).toBe(0);
    const restored = await runRestore(t, run.runId!);
    expect(restored).toMatchObject({ restored: 8, notRestored: 0 });
    const report = await runScan(t);
    expect(report.checks.find((c) => c.id === 'invalid_case_id')!.count).toBe(4);
    expect(report.checks.find((c) => c.id === 'duplicate_progress')!.count).toBe(2);
    const q = await t.pool.query('SELECT count(*)::int AS n FROM caseguard.quarantine WHERE restored_at IS NULL');
    expect(q.rows[0].n).toBe(0);
    await expect(runRestore(t, run.runId!)).rejects.toThrow(/already restored/);
  });

  it('a quarantined row whose key is taken meanwhile is reported, not overwritten', async () => {
    const run = await runRecover(t, { quarantine: true, duplicates: 'quarantine-all' });
    await t.pool.query(
      "INSERT INTO mega_agent.case_intake_progress (user_id, case_id, current_block, current_step) VALUES ('u-invalid-1', 'not-a-uuid', 'matter', 5)",
    );
    const restored = await runRestore(t, run.runId!);
    expect(restored.notRestored).toBe(1);
    expect(restored.outcomes.find((o: { restored: boolean }) => !o.restored)?.reason).toMatch(/same key/);
    const row = await t.pool.query("SELECT current_step FROM mega_agent.case_intake_progress WHERE user_id = 'u-invalid-1'");
    expect(row.rows[0].current_step).toBe(5);
  });
});

describe('undo on the uuid shape', () => {
  it('refuses when deleting a created case would cascade to progress rows', async () => {
    const t = await createTestDatabase();
    try {
      await seedControls(t.pool);
      await toUuidShape(t.pool);
      await t.pool.query("INSERT INTO mega_agent.case_memory (case_id, user_id, kind, content) VALUES ($1, 'u-m', 'note', '{}')", [
        id(700),
      ]);
      const run = await runRecover(t);
      await t.pool.query(
        "INSERT INTO mega_agent.case_intake_progress (user_id, case_id, updated_at) VALUES ('u-m', $1, now() - interval '1 hour')",
        [id(700)],
      );
      await expect(runUndo(t, run.runId!)).rejects.toThrow(/cascade to 1 progress row/);
    } finally {
      await t.drop();
    }
  });
});

describe('recover and undo on a partitioned cases table', () => {
  it('creates, journals and undoes exactly as on a plain table', async () => {
    const t = await createTestDatabase();
    try {
      await t.pool.query(`
        ALTER TABLE mega_agent.cases RENAME TO cases_plain;
        CREATE TABLE mega_agent.cases (LIKE mega_agent.cases_plain INCLUDING ALL) PARTITION BY HASH (case_id);
        CREATE TABLE mega_agent.cases_p0 PARTITION OF mega_agent.cases FOR VALUES WITH (MODULUS 2, REMAINDER 0);
        CREATE TABLE mega_agent.cases_p1 PARTITION OF mega_agent.cases FOR VALUES WITH (MODULUS 2, REMAINDER 1);
        DROP TABLE mega_agent.cases_plain`);
      await seedDamage(t.pool);
      const before = await snapshot(t);
      const run = await runRecover(t, { quarantine: true, batchSize: 2 });
      expect(run.applied.create_case).toBe(5);
      const written = await t.pool.query(
        `
        SELECT bool_and(c.xmin::text = i.after->>'xmin') AS same, count(*)::int AS n
          FROM caseguard.run_items i CROSS JOIN LATERAL unnest(i.case_ids) AS created(id) JOIN mega_agent.cases c ON c.case_id = created.id
         WHERE i.run_id = $1 AND i.action = 'case_created'`,
        [run.runId],
      );
      expect(written.rows[0]).toEqual({ same: true, n: 5 });
      const undo = await runUndo(t, run.runId!);
      expect(undo.casesDeleted).toBe(5);
      expect(await snapshot(t)).toEqual(before);
    } finally {
      await t.drop();
    }
  });
});
