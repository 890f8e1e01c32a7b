/**
 * What a terminal shows (a pseudo-terminal): tables fit its width whatever the data without
 * cutting an id, log lines are one sentence each (no JSON) and share the screen with the
 * progress bar cleanly, --quiet leaves only results and errors, and NO_COLOR removes colour but
 * not progress.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { seedDamage } from '../helpers/fixtures.js';
import { seedOrphans } from '../helpers/orphans.js';
import { runInPty } from '../helpers/pty.js';

const LOG_LINE = /^\[\d\d:\d\d:\d\d\] (INFO|WARN|ERROR|DEBUG)/;

describe('on a terminal', () => {
  let t: TestDatabase;
  beforeEach(async () => {
    t = await createTestDatabase();
    await seedDamage(t.pool);
  });
  afterEach(() => t?.drop());

  it('an 80-column terminal and a 10 kB user id: no line of the report is wider than 80', async () => {
    const huge = `u-${'x'.repeat(10_000)}`;
    await t.pool.query('INSERT INTO mega_agent.case_intake_progress (user_id, case_id) VALUES ($1, gen_random_uuid()::text)', [huge]);
    const session = runInPty(['scan', '--database-url', t.url], { columns: 80 });
    expect(await session.exit).toBe(1);
    const report = session.lines().filter((l) => !LOG_LINE.test(l));
    expect(report.some((l) => l.includes('orphaned_progress'))).toBe(true);
    expect(report.some((l) => l.includes('…'))).toBe(true);
    const wide = report.filter((l) => l.length > 80);
    expect(wide).toEqual([]);
  });

  it('log lines are one line per event and never glued to the progress bar; the bar is gone at exit', async () => {
    await seedOrphans(t.pool, 2000);
    const session = runInPty(['recover', '--yes', '--batch-size', '50', '--database-url', t.url], { env: { NO_COLOR: '1' } });
    expect(await session.exit).toBe(0);
    const lines = session.lines();
    const logs = lines.filter((l) => l.includes('recover.batch_committed'));
    // every batch's line, the last ones too (buffered while the bar was drawn, written before it
    // is cleared): batches 1..N without a gap, and N covers at least the 2,000 orphans
    const numbers = logs.map((l) => Number(/ batch=(\d+)/.exec(l)?.[1]));
    expect(numbers).toEqual(numbers.map((_, i) => i + 1));
    expect(numbers.length).toBeGreaterThanOrEqual(2000 / 50);
    for (const line of logs) expect(line).toMatch(LOG_LINE);
    // The bar was drawn (NO_COLOR keeps progress) and never shares a line with a log line.
    expect(session.screen()).toMatch(/[█░]+ \d+\/\d+ targets/); // drawn while it ran
    for (const line of lines) if (LOG_LINE.test(line)) expect(line).not.toMatch(/[█░]/);
    // Nothing of the bar is left on the screen at the end: it was cleared.
    expect(lines.filter((l) => /[█░]/.test(l))).toEqual([]);
    expect(session.raw()).not.toContain('\u001b[3'); // NO_COLOR: no colour codes at all
  });

  /** The report's lines (log lines left out) of a command run in a terminal this wide. */
  async function onTerminal(args: string[], columns: number) {
    const session = runInPty([...args, '--database-url', t.url], { columns });
    const code = await session.exit;
    const lines = session.lines();
    // the SQL a dry run shows is left whole, for copying: a statement is not folded
    const sql = lines.findIndex((l) => /^-- \w+: one statement per batch/.test(l));
    const end = lines.findIndex((l) => l.startsWith('Dry run:'));
    const prose = sql < 0 ? lines : [...lines.slice(0, sql), ...lines.slice(end)];
    return { code, lines, report: prose.filter((l) => !LOG_LINE.test(l)), logs: lines.filter((l) => LOG_LINE.test(l)) };
  }
  const UUID = /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/gi;

  for (const columns of [80, 200]) {
    it(`at ${columns} columns: every case id whole in every table, no line wider, no JSON in the log lines`, async () => {
      const orphans = (
        await t.pool.query(`SELECT p.case_id FROM mega_agent.case_intake_progress p
                             WHERE p.case_id ~* '^[0-9a-f-]{36}$'
                               AND NOT EXISTS (SELECT 1 FROM mega_agent.cases c WHERE c.case_id::text = lower(p.case_id))`)
      ).rows.map((r) => r.case_id as string);
      expect(orphans.length).toBeGreaterThan(1);
      const shown: string[] = [];
      for (const args of [
        ['scan'],
        ['recover', '--dry-run'],
        ['recover', '--yes', '--quarantine'],
        ['runs'],
        ['runs', 'show', '1'],
        ['quarantine', 'list'],
        ['fk', 'status'],
        ['funnel'],
      ]) {
        const r = await onTerminal(args, columns);
        expect(r.code, `${args.join(' ')}: ${r.lines.join('\n')}`).toBeLessThanOrEqual(1);
        expect(
          r.report.filter((l) => l.length > columns),
          args.join(' '),
        ).toEqual([]);
        // an id is never cut: no hex run ends at an ellipsis
        expect(r.lines.join('\n'), args.join(' ')).not.toMatch(/[0-9a-f]{4}…|…[0-9a-f]{4}/i);
        for (const log of r.logs) expect(log, args.join(' ')).not.toMatch(/\{"/);
        for (const line of r.report) shown.push(...(line.match(UUID) ?? []));
      }
      for (const id of orphans) expect(shown.map((x) => x.toLowerCase())).toContain(id.toLowerCase());
    });
  }

  it('--quiet: only the report and errors; it cannot be combined with --log-level', async () => {
    await seedOrphans(t.pool, 200);
    const r = await onTerminal(['recover', '--yes', '--batch-size', '50', '--quiet'], 100);
    expect(r.code).toBe(0);
    expect(r.logs).toEqual([]);
    expect(r.lines.join('\n')).toMatch(/Recovery plan \(run 1/);
    expect(r.lines.filter((l) => /[█░]/.test(l))).toEqual([]);
    // an error still shows
    const failing = runInPty(['scan', '--quiet', '--database-url', 'postgres://postgres@127.0.0.1:1/none?connect_timeout=2'], {
      columns: 100,
    });
    expect(await failing.exit).toBe(3);
    expect(failing.screen()).toMatch(/caseguard: .*connection refused/);
    const both = await onTerminal(['scan', '--quiet', '--log-level', 'debug'], 100);
    expect(both.code).toBe(2);
    expect(both.lines.join('\n')).toMatch(/cannot be used with/);
  });
});
