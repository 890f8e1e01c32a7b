/**
 * recover beside the application's own rules on cases: every repairable row is repaired, every
 * rejected one journaled with its reason, and the healthy control rows stay untouched.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { inspectDatabase } from '../../src/core/db/inspect.js';
import { UsageError } from '../../src/core/errors.js';
import { planRecovery } from '../../src/core/recover/recover.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { seedControls } from '../helpers/fixtures.js';
import { recoveredCaseCount, seedOrphans } from '../helpers/orphans.js';
import { checksums, runRecover } from '../helpers/recover.js';

describe('recover and the application constraints on cases', () => {
  let t: TestDatabase;
  beforeEach(async () => {
    t = await createTestDatabase();
    await seedControls(t.pool);
    await seedOrphans(t.pool, 40, 'orphan');
  });
  afterEach(() => t?.drop());

  async function rejectedItems() {
    const r = await t.pool.query(
      "SELECT row_key->>'user_id' AS user_id, after->>'sqlstate' AS sqlstate, after->>'reason' AS reason FROM caseguard.run_items WHERE action = 'rejected' ORDER BY 1",
    );
    return r.rows as Array<{ user_id: string; sqlstate: string | null; reason: string }>;
  }

  it('the plan names blockers and risks before anything runs; a blocker refuses with nothing written', async () => {
    await t.pool.query(`ALTER TABLE mega_agent.cases ADD COLUMN tenant_id integer NOT NULL DEFAULT 1;
      ALTER TABLE mega_agent.cases ALTER COLUMN tenant_id DROP DEFAULT;
      ALTER TABLE mega_agent.cases ADD CONSTRAINT short_title CHECK (length(title) < 100);
      CREATE UNIQUE INDEX cases_user_title ON mega_agent.cases (user_id, title)`);
    const shape = await inspectDatabase(t.database.db);
    const plan = await planRecovery(t.database, shape, { quarantine: false, batchSize: 10, sampleLimit: 3 });
    expect(plan.constraints.blockers).toEqual([
      expect.stringMatching(/cases.tenant_id \(integer\) is required.*--case-value tenant_id=VALUE/),
    ]);
    expect(plan.constraints.risks.join('\n')).toMatch(/check constraint short_title/);
    expect(plan.constraints.risks.join('\n')).toMatch(/unique index cases_user_title/);
    const before = await checksums(t, 'all');
    await expect(runRecover(t)).rejects.toThrow(UsageError);
    await expect(runRecover(t, { caseValues: { tenant_id: 'not a number' } })).rejects.toThrow(/does not fit its column's type/);
    await expect(runRecover(t, { caseValues: { tenant_id: '7', colour: 'blue' } })).rejects.toThrow(/cases has no column colour/);
    expect(await checksums(t, 'all')).toEqual(before);
    const done = await runRecover(t, { caseValues: { tenant_id: '7' } });
    expect(done.status).toBe('completed');
    const tenants = await t.pool.query(
      "SELECT tenant_id, count(*)::int AS n FROM mega_agent.cases WHERE title = 'Intake Session (Recovered)' GROUP BY 1",
    );
    expect(tenants.rows).toEqual([{ tenant_id: 7, n: 40 }]);
  });

  it('a trigger that raises for some rows: those are journaled with P0001, every other row of their batches is repaired', async () => {
    await t.pool.query(`CREATE FUNCTION mega_agent.guard() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN IF NEW.user_id LIKE '%7' THEN RAISE EXCEPTION 'user % is frozen', NEW.user_id; END IF; RETURN NEW; END $$;
      CREATE TRIGGER guard BEFORE INSERT ON mega_agent.cases FOR EACH ROW EXECUTE FUNCTION mega_agent.guard()`);
    const controls = await checksums(t, 'controls');
    const result = await runRecover(t, { batchSize: 16 });
    expect(result.status).toBe('partial');
    expect(result.rejected).toBe(4); // orphan-7, -17, -27, -37
    expect(result.applied.create_case).toBe(36);
    expect((await recoveredCaseCount(t.pool)).cases).toBe(36);
    const rejected = await rejectedItems();
    expect(rejected.map((r) => r.user_id)).toEqual(['orphan-17', 'orphan-27', 'orphan-37', 'orphan-7']);
    expect(rejected.every((r) => r.sqlstate === 'P0001')).toBe(true);
    expect(await checksums(t, 'controls')).toEqual(controls);
    const run = await t.pool.query('SELECT status, counts FROM caseguard.runs');
    expect(run.rows[0]).toMatchObject({ status: 'partial', counts: expect.objectContaining({ rejected: 4, create_case: 36 }) });
  });

  it('a trigger that silently returns NULL: reported as suppressed, never as handled meanwhile', async () => {
    await t.pool.query(`CREATE FUNCTION mega_agent.drop_some() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN IF NEW.user_id LIKE '%3' THEN RETURN NULL; END IF; RETURN NEW; END $$;
      CREATE TRIGGER drop_some BEFORE INSERT ON mega_agent.cases FOR EACH ROW EXECUTE FUNCTION mega_agent.drop_some()`);
    const result = await runRecover(t, { batchSize: 16 });
    expect(result.status).toBe('partial');
    expect(result.rejected).toBe(4);
    expect(result.skipped).toBe(0);
    const rejected = await rejectedItems();
    expect(rejected).toHaveLength(4);
    expect(rejected.every((r) => r.sqlstate === null && /suppressed: a trigger on cases returned NULL/.test(r.reason))).toBe(true);
  });

  it('a run keeps no bookkeeping beyond the journal; a dead run is finalised as abandoned with its committed counts', async () => {
    const first = await runRecover(t, { batchSize: 10, onBatch: async () => undefined });
    expect(first.status).toBe('completed');
    const bookkeeping =
      "SELECT string_agg(relname, ',' ORDER BY relname) AS names FROM pg_class WHERE relnamespace = 'caseguard'::regnamespace AND relkind = 'r'";
    expect((await t.pool.query(bookkeeping)).rows[0].names).toBe(
      'case_deletions,deletion_tracking,migrations_contract,migrations_journal,quarantine,run_items,runs,watch_findings,watch_slots',
    );
    expect((await t.pool.query("SELECT count(*)::int AS n FROM pg_class WHERE relname = 'caseguard_targets'")).rows[0].n).toBe(0);
    // A run that died: journaled running, with one batch of 3 created cases and a per-case item
    // of an older version's journal.
    await t.pool.query(`INSERT INTO caseguard.runs (command, status, process) VALUES ('recover', 'running', 'caseguard recover 0dead0')`);
    const dead = (await t.pool.query("SELECT run_id FROM caseguard.runs WHERE process = 'caseguard recover 0dead0'")).rows[0].run_id;
    await t.pool.query(
      `INSERT INTO caseguard.run_items (run_id, action, check_id, table_name, row_key, row_count, case_ids)
       VALUES ($1, 'case_created', 'orphaned_progress', 'cases', '{}', 3, ARRAY[gen_random_uuid(), gen_random_uuid(), gen_random_uuid()])`,
      [dead],
    );
    await t.pool.query(
      `INSERT INTO caseguard.run_items (run_id, action, check_id, table_name, row_key) VALUES ($1, 'case_created', 'orphaned_progress', 'cases', '{"case_id": "x"}')`,
      [dead],
    );
    await runRecover(t);
    const row = await t.pool.query('SELECT status, counts, finished_at IS NOT NULL AS finished FROM caseguard.runs WHERE run_id = $1', [
      dead,
    ]);
    expect(row.rows[0]).toMatchObject({ status: 'abandoned', finished: true, counts: { case_created: 4 } });
  });
});

describe('recover and its connections', () => {
  it('refuses a pool too small to hold the run lock, the run and the journal at once, before anything is written', async () => {
    const t = await createTestDatabase({ poolSize: 2 });
    try {
      await seedOrphans(t.pool, 5, 'orphan');
      const error = await runRecover(t).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(UsageError);
      expect((error as Error).message).toMatch(/at least 3 connections.*nothing was changed/);
      expect((await recoveredCaseCount(t.pool)).cases).toBe(0);
      const runs = await t.pool
        .query("SELECT count(*)::int AS n FROM caseguard.runs WHERE command = 'recover'")
        .catch(() => ({ rows: [{ n: 0 }] }));
      expect(runs.rows[0].n).toBe(0);
    } finally {
      await t.drop();
    }
  });
});
