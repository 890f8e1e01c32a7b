/**
 * A gate never says clean where it did not look: `scan --since T` and a case deleted after T.
 * Without deletion tracking the scan says it saw changed rows only and the gate fails (unless
 * acceptPartial); with tracking installed before T the orphans are found. Checks a validated
 * foreign key proves are reported proven without reading their table; a NOT VALID one proves
 * nothing. And the incremental scan costs what the changes cost: EXPLAIN ANALYZE shows no pass
 * over a table, with the indexes the README names.
 */
import { sql } from 'drizzle-orm';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { inspectDatabase } from '../../src/core/db/inspect.js';
import { installDeletionTracking, readDeletionTracking, removeDeletionTracking } from '../../src/core/scan/deletions.js';
import { allFindings, summarise } from '../../src/core/scan/queries.js';
import { scan, type ScanOptions, type ScanReport } from '../../src/core/scan/scan.js';
import { createTestDatabase, toUuidShape, type TestDatabase } from '../helpers/db.js';
import { seedControls } from '../helpers/fixtures.js';

const base: ScanOptions = { databaseName: 'test', limit: 50, gate: { failOn: 'error', maxFindings: 0 } };
const check = (r: ScanReport, id: string) => r.checks.find((c) => c.id === id)!;

describe('scan --since and deleted cases', () => {
  let t: TestDatabase;
  const run = async (options: Partial<ScanOptions> = {}) =>
    scan(t.database.db, await inspectDatabase(t.database.db), { ...base, ...options });

  /** n healthy intakes last touched an hour ago: a case, its progress, a memory row and a pointer each. */
  async function healthy(n: number) {
    await t.pool.query(
      `INSERT INTO mega_agent.cases (case_id, user_id, title)
       SELECT ('00000000-0000-4000-8000-' || lpad(g::text, 12, '0'))::uuid, 'h-' || g, 'healthy' FROM generate_series(1, $1) g;
       INSERT INTO mega_agent.case_intake_progress (user_id, case_id, current_block, updated_at)
       SELECT 'h-' || g, '00000000-0000-4000-8000-' || lpad(g::text, 12, '0'), 'contact', now() - interval '1 hour' FROM generate_series(1, $1) g;
       INSERT INTO mega_agent.case_memory (case_id, user_id, kind, content, created_at)
       SELECT '00000000-0000-4000-8000-' || lpad(g::text, 12, '0'), 'h-' || g, 'note', '{}', now() - interval '1 hour' FROM generate_series(1, $1) g;
       INSERT INTO mega_agent.bot_user_context (user_id, active_case_id, updated_at)
       SELECT 'h-' || g, '00000000-0000-4000-8000-' || lpad(g::text, 12, '0'), now() - interval '1 hour' FROM generate_series(1, $1) g`.replace(
        /\$1/g,
        String(n),
      ),
    );
  }
  const now = async () => new Date((await t.pool.query('SELECT now()::text AS t')).rows[0].t);
  const deleteCases = (...ns: number[]) => t.pool.query(`DELETE FROM mega_agent.cases WHERE user_id = ANY($1)`, [ns.map((n) => `h-${n}`)]);

  beforeEach(async () => {
    t = await createTestDatabase();
    await seedControls(t.pool);
    await healthy(100);
  });
  afterEach(() => t?.drop());

  it('without deletion tracking: coverage changed-rows-only and the gate fails, unless accepted; a full scan finds the orphans', async () => {
    const since = await now();
    await deleteCases(10, 20, 30);
    const partial = await run({ since });
    expect(partial.coverage).toBe('changed-rows-only');
    expect(check(partial, 'orphaned_progress').count).toBe(0); // it did not look, and says so
    expect(partial.summary.gate).toBe('failed');
    const accepted = await run({ since, acceptPartial: true });
    expect(accepted.coverage).toBe('changed-rows-only');
    expect(accepted.summary.gate).toBe('passed');
    const full = await run();
    expect(full.coverage).toBe('complete');
    expect(check(full, 'orphaned_progress').count).toBe(3);
    expect(full.summary.gate).toBe('failed');
  });

  it('with tracking installed before the window: the orphans of deleted cases are found in every table; controls untouched', async () => {
    const installed = await installDeletionTracking(t.database.db);
    expect(installed.already).toBe(false);
    expect((await installDeletionTracking(t.database.db)).already).toBe(true);
    const since = await now();
    await deleteCases(10, 20, 30);
    // a case given another id counts as deleted under its old one
    await t.pool.query("UPDATE mega_agent.cases SET case_id = gen_random_uuid() WHERE user_id = 'h-40'");
    const r = await run({ since });
    expect(r.coverage).toBe('complete');
    expect(r.deletionsTrackedSince).toBe(installed.since.toISOString());
    expect(
      check(r, 'orphaned_progress')
        .samples.map((f) => f.user_id)
        .sort(),
    ).toEqual(['h-10', 'h-20', 'h-30', 'h-40']);
    expect(check(r, 'orphaned_memory').count).toBe(4);
    expect(check(r, 'dangling_active_case').count).toBe(4);
    expect(r.summary.missingCases).toBe(4);
    // the same as a full scan finds, nothing more
    const full = await run();
    expect(check(full, 'orphaned_progress').count).toBe(4);
    expect(
      (await t.pool.query("SELECT count(*)::int AS n FROM mega_agent.cases WHERE user_id LIKE 'control-%'")).rows[0].n,
    ).toBeGreaterThan(0);
    // a window that starts before tracking did is not covered
    const before = await run({ since: new Date(installed.since.getTime() - 60_000) });
    expect(before.coverage).toBe('changed-rows-only');
    // removed: partial again, and nothing of it is left
    expect((await removeDeletionTracking(t.database.db)).removed).toBe(true);
    expect(await readDeletionTracking(t.database.db)).toEqual({});
    expect((await run({ since })).coverage).toBe('changed-rows-only');
    const triggers = await t.pool.query("SELECT count(*)::int AS n FROM pg_trigger WHERE tgname LIKE 'caseguard_note_%'");
    expect(triggers.rows[0].n).toBe(0);
  });

  it('a disabled trigger is no tracking', async () => {
    await installDeletionTracking(t.database.db);
    const since = await now();
    await t.pool.query('ALTER TABLE mega_agent.cases DISABLE TRIGGER caseguard_note_case_deletes');
    await deleteCases(10);
    expect((await run({ since })).coverage).toBe('changed-rows-only');
  });

  it('the incremental scan reads what changed, not the tables: no pass over any table with the README indexes', async () => {
    await installDeletionTracking(t.database.db);
    await t.pool.query(`
      CREATE INDEX ON mega_agent.case_intake_progress (updated_at);
      CREATE INDEX ON mega_agent.case_memory (created_at);
      CREATE INDEX ON mega_agent.bot_user_context (updated_at)`);
    await healthyMore(20_000);
    await t.pool.query('ANALYZE');
    const since = await now();
    await t.pool.query("UPDATE mega_agent.case_intake_progress SET updated_at = now() WHERE user_id IN ('h-5', 'h-6')");
    const shape = await inspectDatabase(t.database.db);
    const query = summarise(
      allFindings(
        { shape: shape.shape, serverVersionNum: shape.serverVersionNum, memory: true, pointers: true },
        { since, deletionsTracked: true },
      ),
      20,
    );
    const plan = (await t.database.db.execute(sql`EXPLAIN (ANALYZE, FORMAT JSON) ${query}`)).rows[0]!['QUERY PLAN'] as Array<{
      Plan: PlanNode;
    }>;
    // caseguard.case_deletions is the changes themselves: reading it is the cost of the window
    const scans = nodes(plan[0]!.Plan).filter(
      (n) => n['Node Type'] === 'Seq Scan' && (n['Actual Loops'] ?? 0) > 0 && n['Relation Name'] !== 'case_deletions',
    );
    expect(scans.map((n) => n['Relation Name'])).toEqual([]);
    const read = nodes(plan[0]!.Plan)
      .filter(
        (n) => n['Relation Name'] && ['cases', 'case_intake_progress', 'case_memory', 'bot_user_context'].includes(n['Relation Name']),
      )
      .reduce((sum, n) => sum + (n['Actual Rows'] ?? 0) * (n['Actual Loops'] ?? 0), 0);
    expect(read).toBeLessThan(100); // 2 changed rows and their lookups, of 20,000 intakes
  });

  async function healthyMore(n: number) {
    await t.pool.query(`
      INSERT INTO mega_agent.cases (case_id, user_id, title)
      SELECT gen_random_uuid(), 'bulk-' || g, 'bulk' FROM generate_series(1, ${n}) g;
      INSERT INTO mega_agent.case_intake_progress (user_id, case_id, current_block, updated_at)
      SELECT user_id, case_id::text, 'contact', now() - interval '2 hours' FROM mega_agent.cases WHERE user_id LIKE 'bulk-%';
      INSERT INTO mega_agent.case_memory (case_id, user_id, kind, content, created_at)
      SELECT case_id::text, user_id, 'note', '{}', now() - interval '2 hours' FROM mega_agent.cases WHERE user_id LIKE 'bulk-%';
      INSERT INTO mega_agent.bot_user_context (user_id, active_case_id, updated_at)
      SELECT user_id, case_id::text, now() - interval '2 hours' FROM mega_agent.cases WHERE user_id LIKE 'bulk-%'`);
  }
});

interface PlanNode {
  'Node Type': string;
  'Relation Name'?: string;
  'Actual Loops'?: number;
  'Actual Rows'?: number;
  Plans?: PlanNode[];
}
const nodes = (n: PlanNode): PlanNode[] => [n, ...(n.Plans ?? []).flatMap(nodes)];

describe('checks a validated foreign key proves', () => {
  let t: TestDatabase;
  beforeEach(async () => {
    t = await createTestDatabase();
    await seedControls(t.pool);
  });
  afterEach(() => t?.drop());
  const run = async (options: Partial<ScanOptions> = {}) =>
    scan(t.database.db, await inspectDatabase(t.database.db), { ...base, ...options });

  it('are proven with the constraint named; NOT VALID proves nothing; owner_mismatch is still looked for', async () => {
    await toUuidShape(t.pool);
    await t.pool.query(
      "INSERT INTO mega_agent.case_intake_progress (user_id, case_id) SELECT 'intruder', case_id FROM mega_agent.cases WHERE user_id = 'control-1'",
    );
    const proven = await run();
    expect(check(proven, 'orphaned_progress')).toMatchObject({ status: 'proven', provenBy: 'fk_case_intake_progress_case', count: 0 });
    expect(check(proven, 'invalid_case_id').status).toBe('proven');
    expect(check(proven, 'owner_mismatch')).toMatchObject({ status: 'fail', count: 1 });
    // since: the FK proves the progress orphans, but memory and pointers are unproven: still partial
    expect((await run({ since: new Date() })).coverage).toBe('changed-rows-only');
    await t.pool.query(`
      ALTER TABLE mega_agent.case_intake_progress DROP CONSTRAINT fk_case_intake_progress_case;
      ALTER TABLE mega_agent.case_intake_progress ADD CONSTRAINT fk_case_intake_progress_case FOREIGN KEY (case_id)
        REFERENCES mega_agent.cases (case_id) NOT VALID`);
    const notValid = await run();
    expect(check(notValid, 'orphaned_progress').status).toBe('pass');
    expect(check(notValid, 'orphaned_progress').provenBy).toBeUndefined();
  });
});
