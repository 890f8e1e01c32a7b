/** recover on a real server: each repair, controls untouched, dry run, idempotence, journal. */
import { sql } from 'drizzle-orm';
import { drizzle } from 'drizzle-orm/node-postgres';
import pg from 'pg';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Session } from '../../src/core/db/database.js';
import { inspectDatabase } from '../../src/core/db/inspect.js';
import { withSession } from '../../src/core/db/locks.js';
import { getRun } from '../../src/core/journal/journal.js';
import { snapshotTargets } from '../../src/core/recover/targets.js';
import { createTestDatabase, toUuidShape, type TestDatabase } from '../helpers/db.js';
import { F, id, seedControls, seedDamage } from '../helpers/fixtures.js';
import { checksums, dryRecover, runRecover, runScan } from '../helpers/recover.js';

describe('recover', () => {
  let t: TestDatabase;
  beforeEach(async () => {
    t = await createTestDatabase();
    await seedDamage(t.pool);
  });
  afterEach(() => t?.drop());

  it('--dry-run shows the plan and changes nothing', async () => {
    const before = await checksums(t, 'all');
    const plan = await dryRecover(t, { quarantine: true });
    expect(plan).toMatchObject({ dryRun: true, previewed: true, blockers: [] });
    expect(plan.counts).toMatchObject({ create_case: 5, normalise_progress: 5, normalise_memory: 1, normalise_pointer: 1 });
    // 4 invalid ids and one row of the duplicate pair; the pair's latest row is kept
    expect(plan.counts.quarantine_progress).toBe(4 + 1);
    expect(plan.counts.keep_duplicate).toBe(1);
    expect(plan.statements.map((s) => s.kind)).toContain('create_case');
    expect(plan.statements.find((s) => s.kind === 'create_case')!.sql).toMatch(/ON CONFLICT \(case_id\) DO NOTHING/);
    expect(await checksums(t, 'all')).toEqual(before);
    // The dry run journals nothing and leaves no bookkeeping behind.
    expect(plan.runId).toBeNull();
    expect((await t.pool.query('SELECT count(*)::int AS n FROM caseguard.runs')).rows[0].n).toBe(0);
  });

  it('creates one case per missing uuid with its id, the earliest referencing user, and the run in its metadata', async () => {
    const result = await runRecover(t);
    expect(result.status).toBe('completed');
    expect(result.applied.create_case).toBe(5);
    const created = await t.pool.query(
      "SELECT case_id::text, user_id, title, status, metadata FROM mega_agent.cases WHERE title = 'Intake Session (Recovered)' ORDER BY case_id",
    );
    expect(created.rows.map((r) => r.case_id)).toEqual([id(100), id(101), id(102), id(200), id(300)]);
    const byId = Object.fromEntries(created.rows.map((r) => [r.case_id, r]));
    expect(byId[id(101)].user_id).toBe(F.orphanUpper.user);
    expect(byId[id(200)].user_id).toBe(F.memoryOrphan.user);
    expect(byId[id(300)]).toMatchObject({ user_id: F.pointerDangling.user, status: 'intake' });
    expect(byId[id(100)].metadata).toMatchObject({ recovered_by: 'caseguard', run_id: result.runId, check: 'orphaned_progress' });
  });

  it('leaves controls untouched, and with --quarantine leaves no error finding', async () => {
    const controls = await checksums(t, 'controls');
    const result = await runRecover(t, { quarantine: true });
    expect(result.status).toBe('completed');
    expect(await checksums(t, 'controls')).toEqual(controls);
    const report = await runScan(t);
    expect(report.summary.errors).toBe(0);
    expect(report.checks.find((c) => c.id === 'noncanonical_case_id')!.count).toBe(0);
    expect(report.checks.find((c) => c.id === 'owner_mismatch')!.count).toBe(1); // warn: never changed
  });

  it('without --quarantine reports invalid and duplicate rows and leaves them', async () => {
    const result = await runRecover(t);
    expect(result.plan.leftAlone[0]).toMatch(/--quarantine/);
    const report = await runScan(t);
    expect(report.checks.find((c) => c.id === 'invalid_case_id')!.count).toBe(4);
    expect(report.checks.find((c) => c.id === 'duplicate_progress')!.count).toBe(2);
    expect(report.checks.find((c) => c.id === 'orphaned_progress')!.count).toBe(0);
  });

  it("normalises spellings so the seed's text comparison agrees", async () => {
    await runRecover(t);
    const bare = await t.pool.query(`SELECT cip.user_id FROM mega_agent.case_intake_progress cip
      WHERE NOT EXISTS (SELECT 1 FROM mega_agent.cases c WHERE c.case_id::text = cip.case_id)`);
    // only the rows recover must not guess at remain: invalid ids and the duplicate's other spelling
    expect(bare.rows.map((r) => r.user_id).sort()).toEqual([...F.invalid.map((i) => i.user), F.duplicate.user].sort());
    const spelled = await t.pool.query('SELECT case_id FROM mega_agent.case_intake_progress WHERE user_id = $1', [F.spellings[2]!.user]);
    expect(spelled.rows[0].case_id).toBe(F.spellings[2]!.canonical);
  });

  it('quarantines full rows with reason and run, in the same transaction that removes them', async () => {
    const result = await runRecover(t, { quarantine: true });
    const q = await t.pool.query('SELECT source_table, reason, run_id, row_data FROM caseguard.quarantine ORDER BY quarantine_id');
    expect(q.rows.every((r) => Number(r.run_id) === result.runId)).toBe(true);
    const progress = q.rows.filter((r) => r.source_table === 'case_intake_progress');
    expect(progress.filter((r) => r.reason === 'invalid_case_id')).toHaveLength(4);
    expect(progress.filter((r) => r.reason === 'duplicate_progress')).toHaveLength(1);
    expect(progress[0].row_data).toHaveProperty('answers');
    expect(progress[0].row_data).toHaveProperty('created_at');
    expect(q.rows.filter((r) => r.source_table === 'case_memory')).toHaveLength(1);
    expect(q.rows.filter((r) => r.source_table === 'bot_user_context')).toHaveLength(1);
  });

  it('a duplicate pair keeps the row the bot reads (the latest), canonicalised; the other is quarantined', async () => {
    // The bot last wrote the braced spelling: that is the row it would serve the user.
    await t.pool.query(
      'UPDATE mega_agent.case_intake_progress SET answers = \'{"kept": "yes"}\', updated_at = now() + interval \'1 hour\' WHERE user_id = $1 AND case_id = $2',
      [F.duplicate.user, F.duplicate.other],
    );
    const result = await runRecover(t, { quarantine: true });
    expect(result.applied.keep_duplicate).toBe(1);
    const live = await t.pool.query('SELECT case_id, answers FROM mega_agent.case_intake_progress WHERE user_id = $1', [F.duplicate.user]);
    expect(live.rows).toEqual([{ case_id: F.duplicate.canonical, answers: { kept: 'yes' } }]);
    const q = await t.pool.query("SELECT row_data->>'case_id' AS case_id FROM caseguard.quarantine WHERE reason = 'duplicate_progress'");
    expect(q.rows).toEqual([{ case_id: F.duplicate.canonical }]);
    expect((await runScan(t)).summary.errors).toBe(0);
  });

  it('--duplicates quarantine-all moves every row of a pair aside', async () => {
    const result = await runRecover(t, { quarantine: true, duplicates: 'quarantine-all' });
    expect(result.plan.counts.keep_duplicate).toBe(0);
    const live = await t.pool.query('SELECT count(*)::int AS n FROM mega_agent.case_intake_progress WHERE user_id = $1', [
      F.duplicate.user,
    ]);
    expect(live.rows[0].n).toBe(0);
    const q = await t.pool.query("SELECT count(*)::int AS n FROM caseguard.quarantine WHERE reason = 'duplicate_progress'");
    expect(q.rows[0].n).toBe(2);
  });

  it('is idempotent: a second run right after changes nothing and says so', async () => {
    await runRecover(t, { quarantine: true });
    const before = await checksums(t, 'all');
    const again = await runRecover(t, { quarantine: true });
    expect(again.status).toBe('nothing_to_do');
    expect(again.plan.total).toBe(0);
    expect(await checksums(t, 'all')).toEqual(before);
  });

  it('journals what it did, item by item', async () => {
    const result = await runRecover(t, { quarantine: true, batchSize: 2 });
    expect(result.batches).toBeGreaterThan(5);
    const run = await getRun(t.database.db, result.runId!);
    expect(run?.status).toBe('completed');
    const created = run!.items.filter((i) => i.action === 'case_created').reduce((n, i) => n + i.count, 0);
    expect(created).toBe(5);
    // five spellings, and the kept row of the duplicate pair
    expect(run!.items.find((i) => i.action === 'spelling_changed' && i.tableName === 'case_intake_progress')?.count).toBe(6);
    // Created cases: one item per batch, naming them and the transaction that wrote them.
    const batches = await t.pool.query(
      `
      SELECT i.row_count, cardinality(i.case_ids) AS ids, i.after->>'xmin' AS xmin,
             (SELECT array_agg(DISTINCT c.xmin::text) FROM mega_agent.cases c WHERE c.case_id = ANY(i.case_ids)) AS written_by
        FROM caseguard.run_items i WHERE i.run_id = $1 AND i.action = 'case_created' ORDER BY i.item_id`,
      [result.runId],
    );
    // batches of 2: at least three items (one per check a batch's cases come from)
    expect(batches.rows.length).toBeGreaterThanOrEqual(3);
    expect(batches.rows.reduce((n, r) => n + r.row_count, 0)).toBe(5);
    for (const b of batches.rows) {
      expect(b.ids).toBe(b.row_count);
      expect(b.written_by).toEqual([b.xmin]);
    }
    // The run's targets were a temporary table of its session, dropped when it ended.
    const targets = await t.pool.query("SELECT count(*)::int AS n FROM pg_class WHERE relname = 'caseguard_targets'");
    expect(targets.rows[0].n).toBe(0);
  });

  it('keeps its targets in session memory where it can, and snapshots on a session whose temporary buffers are fixed already', async () => {
    const shape = await inspectDatabase(t.database.db);
    const buffers = async (session: Session) =>
      (await session.execute<{ temp_buffers: string }>(sql`SHOW temp_buffers`)).rows[0]!.temp_buffers;
    const fresh = await withSession(t.pool, async (session) => {
      const snapshot = await snapshotTargets(session, shape, 'keep-latest');
      expect(await buffers(session)).toBe('64MB');
      return snapshot;
    });
    expect(fresh.counts.create_case).toBe(5);
    // a connection of its own on which the application used a temporary table first: the setting is fixed
    const client = new pg.Client({ connectionString: t.url });
    await client.connect();
    try {
      const session = drizzle({ client }) as unknown as Session;
      await session.execute(sql`CREATE TEMP TABLE app_scratch AS SELECT 1 AS a`);
      const before = await buffers(session);
      expect(before).not.toBe('64MB');
      expect(await snapshotTargets(session, shape, 'keep-latest')).toEqual(fresh);
      expect(await buffers(session)).toBe(before);
    } finally {
      await client.end();
    }
  });

  it('works on cases tables with extra NOT NULL columns that have defaults', async () => {
    await t.pool.query("ALTER TABLE mega_agent.cases ADD COLUMN tenant text NOT NULL DEFAULT 'main'");
    const result = await runRecover(t);
    expect(result.applied.create_case).toBe(5);
  });
});

describe('recover on the uuid shape', () => {
  it('creates missing cases for memory and pointers, and finds nothing in progress', async () => {
    const t = await createTestDatabase();
    try {
      await seedControls(t.pool);
      await toUuidShape(t.pool);
      await t.pool.query("INSERT INTO mega_agent.case_memory (case_id, user_id, kind, content) VALUES ($1, 'u-m', 'note', '{}')", [
        id(900),
      ]);
      const result = await runRecover(t);
      expect(result.applied.create_case).toBe(1);
      expect((await runScan(t)).summary.errors).toBe(0);
    } finally {
      await t.drop();
    }
  });
});
