/** The checks on a real server: each kind of damage found, controls untouched, filters, shapes. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDatabase } from '../../src/core/db/database.js';
import { serverTarget } from '../../src/core/db/connection.js';
import { inspectDatabase } from '../../src/core/db/inspect.js';
import { silentLogger } from '../../src/core/logger.js';
import { scan, type ScanOptions, type ScanReport } from '../../src/core/scan/scan.js';
import { isUuidSpelling } from '../../src/core/uuid.js';
import { createReaderRole, createTestDatabase, tableChecksum, toUuidShape, type TestDatabase } from '../helpers/db.js';
import { expected, F, HOSTILE_USER, id, seedControls, seedDamage } from '../helpers/fixtures.js';

const gate = { failOn: 'error', maxFindings: 0 } as const;
const base: ScanOptions = { databaseName: 'test', limit: 50, gate };

async function run(t: TestDatabase, options: Partial<ScanOptions> = {}): Promise<ScanReport> {
  return scan(t.database.db, await inspectDatabase(t.database.db), { ...base, ...options });
}
const check = (r: ScanReport, checkId: string) => r.checks.find((c) => c.id === checkId)!;

describe('scan on the legacy shape with every kind of damage', () => {
  let t: TestDatabase;
  let report: ScanReport;
  const checksums: Record<string, string> = {};
  const tables = ['mega_agent.cases', 'mega_agent.case_intake_progress', 'mega_agent.case_memory', 'mega_agent.bot_user_context'];

  beforeAll(async () => {
    t = await createTestDatabase();
    await seedDamage(t.pool);
    for (const table of tables) checksums[table] = await tableChecksum(t.pool, table);
    report = await run(t);
  });
  afterAll(() => t?.drop());

  it('counts each check exactly', () => {
    const counts = Object.fromEntries(report.checks.map((c) => [c.id, c.count]));
    const { missingCases, ...checks } = expected;
    expect(counts).toEqual(checks);
    expect(report.summary.missingCases).toBe(missingCases);
    expect(report.summary.gate).toBe('failed');
  });

  it('changes nothing', async () => {
    for (const table of tables) expect(await tableChecksum(t.pool, table)).toBe(checksums[table]);
  });

  it('never reports a control row', () => {
    const controlUsers = new Set(F.controls.map((c) => c.user));
    for (const c of report.checks) for (const s of c.samples) expect(controlUsers.has(s.user_id)).toBe(false);
  });

  it('an orphan in any spelling names its canonical uuid; distinct cases counted', () => {
    const orphans = check(report, 'orphaned_progress');
    expect(orphans.distinctCases).toBe(3);
    expect(orphans.samples.map((s) => s.canonical_id).sort()).toEqual([id(100), id(101), id(102)]);
    expect(orphans.samples.find((s) => s.user_id === F.orphanUpper.user)?.case_id).toBe(F.orphanUpper.caseId);
  });

  it('a non-canonical spelling of an existing case is not an orphan, whatever the spelling', () => {
    const spelled = check(report, 'noncanonical_case_id').samples;
    for (const s of F.spellings) {
      expect(spelled).toContainEqual(
        expect.objectContaining({ user_id: s.user, case_id: s.caseId, canonical_id: s.canonical, table: 'case_intake_progress' }),
      );
    }
    expect(spelled).toContainEqual(expect.objectContaining({ table: 'case_memory', case_id: F.memorySpelling.caseId }));
    expect(spelled).toContainEqual(expect.objectContaining({ table: 'bot_user_context', case_id: F.pointerSpelling.caseId }));
  });

  it('text that is no uuid (whitespace, 33 digits, a non-hex letter) is invalid_case_id', () => {
    expect(
      check(report, 'invalid_case_id')
        .samples.map((s) => s.case_id)
        .sort(),
    ).toEqual(F.invalid.map((i) => i.caseId).sort());
  });

  it('two spellings of one uuid for one user are duplicate_progress', () => {
    const dups = check(report, 'duplicate_progress').samples;
    expect(dups.map((d) => d.case_id).sort()).toEqual([F.duplicate.canonical, F.duplicate.other].sort());
    expect(dups.every((d) => d.user_id === F.duplicate.user && d.canonical_id === F.duplicate.canonical)).toBe(true);
  });

  it('memory, pointers and owners', () => {
    expect(
      check(report, 'orphaned_memory')
        .samples.map((s) => s.case_id)
        .sort(),
    ).toEqual([id(200), 'garbage'].sort());
    expect(check(report, 'orphaned_memory').distinctCases).toBe(1);
    expect(
      check(report, 'dangling_active_case')
        .samples.map((s) => s.user_id)
        .sort(),
    ).toEqual(['u-pointer', 'u-pointer-bad']);
    expect(check(report, 'owner_mismatch').samples).toEqual([
      expect.objectContaining({ user_id: F.mismatch.user, owner: F.mismatch.owner, case_id: F.mismatch.caseId }),
    ]);
  });

  it('keeps hostile user ids intact', () => {
    expect(check(report, 'orphaned_progress').samples.map((s) => s.user_id)).toContain(HOSTILE_USER);
  });

  it('--limit caps the samples but not the counts', async () => {
    const limited = await run(t, { limit: 1 });
    expect(check(limited, 'noncanonical_case_id')).toMatchObject({ count: expected.noncanonical_case_id });
    expect(check(limited, 'noncanonical_case_id').samples).toHaveLength(1);
  });

  it('gate: warnings fail only when asked; --max-findings tolerates', async () => {
    const errors = report.summary.errors;
    expect(errors).toBe(
      expected.orphaned_progress +
        expected.invalid_case_id +
        expected.duplicate_progress +
        expected.orphaned_memory +
        expected.dangling_active_case,
    );
    expect((await run(t, { gate: { failOn: 'error', maxFindings: errors } })).summary.gate).toBe('passed');
    expect((await run(t, { gate: { failOn: 'warn', maxFindings: errors } })).summary.gate).toBe('failed');
  });

  it('--user limits every check to one user', async () => {
    const one = await run(t, { userId: F.duplicate.user });
    expect(check(one, 'duplicate_progress').count).toBe(2);
    expect(check(one, 'orphaned_progress').count).toBe(0);
  });

  it('--since only looks at rows updated since then', async () => {
    const later = new Date(Date.now() + 60_000);
    const none = await run(t, { since: later });
    expect(none.checks.every((c) => c.count === 0)).toBe(true);
    await t.pool.query("UPDATE mega_agent.case_intake_progress SET updated_at = now() + interval '2 minutes' WHERE user_id = 'u-orphan'");
    const one = await run(t, { since: later });
    expect(check(one, 'orphaned_progress').count).toBe(1);
  });

  it("the regex agrees with PostgreSQL's own uuid input on every spelling and near-miss", async () => {
    const spellings = [
      id(7),
      id(7).toUpperCase(),
      `{${id(7)}}`,
      id(7).replace(/-/g, ''),
      F.spellings[3]!.caseId,
      ` ${id(7)}`,
      `${id(7)} `,
      `${id(7).replace(/-/g, '')}0`,
      id(7).replace('4000', '4g00'),
      `{${id(7)}`,
      `${id(7)}-`,
      'a0-eebc999c0b4ef8bb6d6bb9bd380a11',
      '',
    ];
    for (const s of spellings) {
      const pgAccepts = await t.pool.query('SELECT $1::text::uuid AS u', [s]).then(
        () => true,
        () => false,
      );
      expect(isUuidSpelling(s), JSON.stringify(s)).toBe(pgAccepts);
    }
  });
});

describe('scan edge cases', () => {
  it('reports checks on absent optional tables as skipped', async () => {
    const t = await createTestDatabase();
    try {
      await seedControls(t.pool);
      await t.pool.query('DROP TABLE mega_agent.case_memory; DROP TABLE mega_agent.bot_user_context');
      const report = await run(t);
      expect(check(report, 'orphaned_memory')).toMatchObject({ status: 'skipped', reason: 'table absent (mega_agent.case_memory)' });
      expect(check(report, 'dangling_active_case').status).toBe('skipped');
      expect(check(report, 'orphaned_progress').status).toBe('pass');
      expect(report.summary.gate).toBe('passed');
    } finally {
      await t.drop();
    }
  });

  it('works on the uuid shape: clean with the FK; finds orphans and owners when the FK is missing', async () => {
    const t = await createTestDatabase();
    try {
      await seedControls(t.pool);
      await toUuidShape(t.pool);
      const clean = await run(t);
      // the validated FK and the uuid type prove what they can; owner_mismatch is still looked for
      expect(Object.fromEntries(clean.checks.map((c) => [c.id, c.status]))).toEqual({
        orphaned_progress: 'proven',
        invalid_case_id: 'proven',
        noncanonical_case_id: expect.stringMatching(/^(pass|proven)$/),
        duplicate_progress: 'proven',
        orphaned_memory: expect.stringMatching(/^(pass|proven)$/),
        dangling_active_case: expect.stringMatching(/^(pass|proven)$/),
        owner_mismatch: 'pass',
      });
      expect(check(clean, 'orphaned_progress').provenBy).toBe('fk_case_intake_progress_case');
      await t.pool.query('ALTER TABLE mega_agent.case_intake_progress DROP CONSTRAINT fk_case_intake_progress_case');
      await t.pool.query("INSERT INTO mega_agent.case_intake_progress (user_id, case_id) VALUES ('u-x', $1), ('u-y', $2)", [
        id(500),
        id(1),
      ]);
      const damaged = await run(t);
      expect(check(damaged, 'orphaned_progress').samples).toEqual([expect.objectContaining({ user_id: 'u-x', canonical_id: id(500) })]);
      expect(check(damaged, 'owner_mismatch').samples).toEqual([expect.objectContaining({ user_id: 'u-y', owner: 'control-1' })]);
      expect(check(damaged, 'invalid_case_id').count).toBe(0);
    } finally {
      await t.drop();
    }
  });

  it('runs as a role with only USAGE and SELECT on mega_agent', async () => {
    const t = await createTestDatabase();
    await seedDamage(t.pool);
    const role = await createReaderRole(t);
    try {
      const reader = await openDatabase(serverTarget(role.url), { log: silentLogger });
      try {
        const report = await scan(reader.db, await inspectDatabase(reader.db), base);
        expect(check(report, 'orphaned_progress').count).toBe(expected.orphaned_progress);
        // and it really cannot write: the role is read-only
        await expect(reader.pool.query("INSERT INTO mega_agent.cases (user_id, title) VALUES ('x', 'y')")).rejects.toThrow(
          /permission denied/,
        );
      } finally {
        await reader.close();
      }
    } finally {
      await role.drop();
      await t.drop();
    }
  });

  it('streams every finding in the same snapshot with onAllFindings', async () => {
    const t = await createTestDatabase();
    try {
      await seedDamage(t.pool);
      let streamed = 0;
      const report = await run(t, {
        limit: 0,
        onAllFindings: async (_r, pages) => {
          for await (const page of pages) streamed += page.length;
        },
      });
      expect(streamed).toBe(report.checks.reduce((n, c) => n + c.count, 0));
      expect(report.checks.every((c) => c.samples.length === 0)).toBe(true);
    } finally {
      await t.drop();
    }
  });
});
