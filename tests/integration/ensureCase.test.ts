/**
 * The ensure-case guard: a case missing under an intake in progress is re-created with its id
 * preserved, and the user carries on.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inspectDatabase } from '../../src/core/db/inspect.js';
import { createIntakeHandlers, type IntakeHandlers } from '../../src/core/intake/handlers.js';
import { legacyBuggyStart } from '../../src/core/intake/legacy.js';
import { createTestDatabase, tableChecksum, toUuidShape, type TestDatabase } from '../helpers/db.js';
import { answer, completeIntake } from '../helpers/intake.js';
import { recordingLogger } from '../helpers/logger.js';

describe('ensure-case guard (legacy shape)', () => {
  let t: TestDatabase;
  let handlers: IntakeHandlers;
  const log = recordingLogger();

  beforeAll(async () => {
    t = await createTestDatabase();
    handlers = createIntakeHandlers({ db: t.database.db, shape: await inspectDatabase(t.database.db), log });
  });
  afterAll(() => t?.drop());

  it.each(['status', 'resume', 'text', 'cancel'] as const)('re-creates a case deleted mid-intake (%s), id preserved', async (handler) => {
    const userId = `u-deleted-${handler}`;
    const control = await handlers.start(`control-${handler}`);
    const controlBefore = await tableChecksum(t.pool, 'mega_agent.cases', `case_id = '${control.caseId}'`);
    let reply = await handlers.start(userId);
    reply = await answer(handlers, userId, reply);
    await t.pool.query('DELETE FROM mega_agent.cases WHERE case_id = $1', [reply.caseId]);

    const after = handler === 'text' ? await handlers.text(userId, 'ada@example.com') : await handlers[handler](userId);
    expect(after.recovered).toBe(true);
    expect(after.caseId).toBe(reply.caseId);
    const c = await t.pool.query('SELECT user_id, title, metadata FROM mega_agent.cases WHERE case_id = $1', [reply.caseId]);
    expect(c.rows[0]).toMatchObject({ user_id: userId, title: 'Intake Session (Recovered)' });
    expect(c.rows[0].metadata).toMatchObject({ recovered_by: 'ensure_case_exists', handler });
    const missing = log.events.find((e) => e.fields.event === 'ensure_case_exists.case_missing' && e.fields.user_id === userId);
    expect(missing).toMatchObject({ level: 'warn', fields: { case_id: reply.caseId, handler } });
    expect(log.events.some((e) => e.fields.event === 'intake.case_recovered' && e.fields.user_id === userId)).toBe(true);
    expect(await tableChecksum(t.pool, 'mega_agent.cases', `case_id = '${control.caseId}'`)).toBe(controlBefore);
  });

  it('lets a user of the old buggy start carry on to the end', async () => {
    const caseId = await legacyBuggyStart(t.database.db, log, 'u-legacy', { createCase: false });
    const orphan = await t.pool.query('SELECT count(*)::int AS n FROM mega_agent.cases WHERE case_id = $1', [caseId]);
    expect(orphan.rows[0].n).toBe(0);
    const resumed = await handlers.resume('u-legacy');
    expect(resumed.recovered).toBe(true);
    const done = await completeIntake(handlers, 'u-legacy', resumed);
    expect(done.outcome).toBe('completed');
    const memory = await t.pool.query('SELECT count(*)::int AS n FROM mega_agent.case_memory WHERE case_id = $1', [caseId]);
    expect(memory.rows[0].n).toBeGreaterThan(0);
  });

  it('finds the case under a non-canonical spelling, without re-creating it', async () => {
    const started = await handlers.start('u-spelling');
    await t.pool.query('UPDATE mega_agent.case_intake_progress SET case_id = upper($1) WHERE user_id = $2', [started.caseId, 'u-spelling']);
    const status = await handlers.status('u-spelling');
    expect(status.recovered).toBe(false);
    expect(status.caseId).toBe(started.caseId);
    const n = await t.pool.query('SELECT count(*)::int AS n FROM mega_agent.cases WHERE user_id = $1', ['u-spelling']);
    expect(n.rows[0].n).toBe(1);
  });

  it('refuses to guess when the case id is no uuid, logs intake.case_missing, and lets the user start afresh', async () => {
    await t.pool.query(
      "INSERT INTO mega_agent.case_intake_progress (user_id, case_id, current_block) VALUES ('u-garbage', 'not-a-uuid', 'contact')",
    );
    const status = await handlers.status('u-garbage');
    expect(status.outcome).toBe('damaged');
    expect(log.events.some((e) => e.fields.event === 'intake.case_missing' && e.fields.user_id === 'u-garbage')).toBe(true);
    const fresh = await handlers.start('u-garbage');
    expect(fresh.outcome).toBe('started');
    const rows = await t.pool.query('SELECT case_id, status FROM mega_agent.case_intake_progress WHERE user_id = $1 ORDER BY created_at', [
      'u-garbage',
    ]);
    expect(rows.rows[0]).toEqual({ case_id: 'not-a-uuid', status: 'abandoned' });
  });
});

describe('the old buggy start on the uuid shape', () => {
  let t: TestDatabase;
  beforeAll(async () => {
    t = await createTestDatabase();
    await toUuidShape(t.pool);
  });
  afterAll(() => t?.drop());

  it('is refused by the foreign key: no orphan can be written', async () => {
    const log = recordingLogger();
    await expect(legacyBuggyStart(t.database.db, log, 'u-fk', { createCase: false })).rejects.toMatchObject({ cause: { code: '23503' } });
    const n = await t.pool.query('SELECT count(*)::int AS n FROM mega_agent.case_intake_progress');
    expect(n.rows[0].n).toBe(0);
  });
});
