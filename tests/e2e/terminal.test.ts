/**
 * What a terminal shows (a pseudo-terminal): tables fit its width whatever the data, log lines
 * are one line each and share the screen with the progress bar cleanly, and NO_COLOR removes
 * colour but not progress.
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
    const numbers = logs.map((l) => Number(/"batch":(\d+)/.exec(l)?.[1]));
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
});
