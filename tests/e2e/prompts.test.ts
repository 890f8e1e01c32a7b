/**
 * Prompts on a real terminal (a pseudo-terminal): the plan is shown and confirmed before any
 * lock or journal row; declining exits 1, Ctrl-C exits 130, and neither writes anything.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createTestDatabase, tableChecksum, toUuidShape, type TestDatabase } from '../helpers/db.js';
import { seedDamage } from '../helpers/fixtures.js';
import { runInPty } from '../helpers/pty.js';

describe('prompts on a terminal', () => {
  let t: TestDatabase;
  beforeEach(async () => {
    t = await createTestDatabase();
    await seedDamage(t.pool);
  });
  afterEach(() => t?.drop());

  async function journalRows(): Promise<number> {
    return (await t.pool.query('SELECT count(*)::int AS n FROM caseguard.runs')).rows[0].n;
  }

  it('recover: Ctrl-C at the prompt exits 130, nothing changed, no run journaled', async () => {
    const before = await tableChecksum(t.pool, 'mega_agent.cases');
    const session = runInPty(['recover', '--database-url', t.url]);
    await session.waitFor(/Apply this plan/);
    expect(session.screen()).toMatch(/Recovery plan \(dry run, nothing journaled/);
    session.type('\x03');
    expect(await session.exit).toBe(130);
    expect(session.screen()).toMatch(/interrupted at the prompt; nothing was changed/);
    expect(session.screen()).not.toMatch(/internal error|ExitPromptError|\n\s+at /);
    expect(await tableChecksum(t.pool, 'mega_agent.cases')).toBe(before);
    expect(await journalRows()).toBe(0);
  });

  it('recover: declining exits 1 with "nothing was changed"; no run journaled', async () => {
    const before = await tableChecksum(t.pool, 'mega_agent.cases');
    const session = runInPty(['recover', '--database-url', t.url]);
    await session.waitFor(/Apply this plan/);
    session.type('n\r');
    expect(await session.exit).toBe(1);
    expect(session.screen()).toMatch(/Declined: nothing was changed/);
    expect(await tableChecksum(t.pool, 'mega_agent.cases')).toBe(before);
    expect(await journalRows()).toBe(0);
  });

  it('recover: yes at the prompt applies the plan shown', async () => {
    const session = runInPty(['recover', '--database-url', t.url]);
    await session.waitFor(/Apply this plan/);
    session.type('y\r');
    expect(await session.exit).toBe(0);
    expect(session.screen()).toMatch(/Recovered: run \d+/);
    expect(await journalRows()).toBe(1);
  });

  it('recover --undo and quarantine restore ask before any lock or journal row: Ctrl-C and declining write nothing', async () => {
    const run = runInPty(['recover', '--yes', '--quarantine', '--database-url', t.url]);
    expect(await run.exit).toBe(0);
    const after = await tableChecksum(t.pool, 'mega_agent.cases');
    const undo = runInPty(['recover', '--undo', '1', '--database-url', t.url]);
    await undo.waitFor(/Undo run 1: 5 case\(s\) to delete[\s\S]*\(y\/N\)/);
    undo.type('\x03');
    expect(await undo.exit).toBe(130);
    const restore = runInPty(['quarantine', 'restore', '1', '--database-url', t.url]);
    await restore.waitFor(/Restore 7 row\(s\) quarantined by run 1\?/);
    restore.type('n\r');
    expect(await restore.exit).toBe(1);
    expect(restore.screen()).toMatch(/Declined: nothing was changed/);
    expect(await tableChecksum(t.pool, 'mega_agent.cases')).toBe(after);
    expect(await journalRows()).toBe(1);
  });

  it('fk drop: Ctrl-C at the prompt exits 130 and the constraint stays', async () => {
    await t.pool.query('TRUNCATE mega_agent.case_intake_progress, mega_agent.case_memory, mega_agent.bot_user_context');
    await toUuidShape(t.pool);
    const session = runInPty(['fk', 'drop', '--database-url', t.url]);
    await session.waitFor(/Drop the foreign key/);
    session.type('\x03');
    expect(await session.exit).toBe(130);
    expect(session.screen()).toMatch(/interrupted at the prompt; nothing was changed/);
    const fk = await t.pool.query("SELECT count(*)::int AS n FROM pg_constraint WHERE conname = 'fk_case_intake_progress_case'");
    expect(fk.rows[0].n).toBe(1);
  });
});
