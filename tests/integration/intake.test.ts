/**
 * The fixed intake flow on a real server, on both shapes: the legacy text column, and uuid
 * with the foreign key; on a pipelining pool (as simulate and bot open it: a call's statements
 * go out together) and on a plain one (as an application may pass its own).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inspectDatabase } from '../../src/core/db/inspect.js';
import { INTAKE_USER_LOCK } from '../../src/core/db/locks.js';
import { CANCEL_CONFIRM, CANCEL_KEEP, createIntakeHandlers, type IntakeHandlers } from '../../src/core/intake/handlers.js';
import { QUESTIONNAIRE, TOTAL_QUESTIONS } from '../../src/core/intake/questionnaire.js';
import { createTestDatabase, tableChecksum, toUuidShape, type TestDatabase } from '../helpers/db.js';
import { answer, completeIntake, VALID_ANSWERS } from '../helpers/intake.js';
import { recordingLogger } from '../helpers/logger.js';

describe.each([
  ['legacy', 'pipelining'],
  ['uuid', 'pipelining'],
  ['legacy', 'plain'],
  ['uuid', 'plain'],
] as const)('intake flow on the %s shape, %s pool', (shapeName, poolKind) => {
  let t: TestDatabase;
  let handlers: IntakeHandlers;
  const log = recordingLogger();

  beforeAll(async () => {
    t = await createTestDatabase({ log, pipeline: poolKind === 'pipelining' });
    if (shapeName === 'uuid') await toUuidShape(t.pool);
    const shape = await inspectDatabase(t.database.db);
    expect(shape.shape).toBe(shapeName);
    handlers = createIntakeHandlers({ db: t.database.db, shape, log });
  });
  afterAll(() => t?.drop());

  it('start creates the case, then the progress, and points the user at it', async () => {
    const reply = await handlers.start('u-start');
    expect(reply.outcome).toBe('started');
    expect(reply.question).toEqual({ key: QUESTIONNAIRE[0]!.questions[0]!.key, number: 1 });
    const c = await t.pool.query('SELECT user_id, title, status FROM mega_agent.cases WHERE case_id = $1', [reply.caseId]);
    expect(c.rows).toEqual([{ user_id: 'u-start', title: 'Intake Session', status: 'intake' }]);
    const p = await t.pool.query(
      'SELECT case_id::text, current_block, current_step, status FROM mega_agent.case_intake_progress WHERE user_id = $1',
      ['u-start'],
    );
    expect(p.rows).toEqual([{ case_id: reply.caseId, current_block: 'contact', current_step: 0, status: 'in_progress' }]);
    const ctx = await t.pool.query('SELECT active_case_id FROM mega_agent.bot_user_context WHERE user_id = $1', ['u-start']);
    expect(ctx.rows[0].active_case_id).toBe(reply.caseId);
    const created = log.events.find((e) => e.fields.event === 'intake.case_created' && e.fields.user_id === 'u-start');
    expect(created?.fields).toMatchObject({ case_id: reply.caseId, handler: 'start' });
  });

  it('a whole intake: every answer saved, a memory row each, the case completed', async () => {
    const done = await completeIntake(handlers, 'u-full');
    expect(done.outcome).toBe('completed');
    const p = await t.pool.query(
      'SELECT answers, completed_blocks, status, current_block FROM mega_agent.case_intake_progress WHERE user_id = $1',
      ['u-full'],
    );
    expect(p.rows[0].status).toBe('completed');
    expect(p.rows[0].current_block).toBeNull();
    expect(p.rows[0].completed_blocks).toEqual(QUESTIONNAIRE.map((b) => b.id));
    expect(Object.keys(p.rows[0].answers).sort()).toEqual(Object.keys(VALID_ANSWERS).sort());
    expect(p.rows[0].answers.email).toBe('ada@example.com');
    const m = await t.pool.query(
      'SELECT kind, count(*)::int AS n FROM mega_agent.case_memory WHERE user_id = $1 GROUP BY kind ORDER BY kind',
      ['u-full'],
    );
    expect(m.rows).toEqual([
      { kind: 'intake_answer', n: TOTAL_QUESTIONS },
      { kind: 'intake_completed', n: 1 },
    ]);
    const c = await t.pool.query('SELECT status FROM mega_agent.cases WHERE case_id = $1', [done.caseId]);
    expect(c.rows[0].status).toBe('intake_complete');
    const ctx = await t.pool.query('SELECT active_case_id FROM mega_agent.bot_user_context WHERE user_id = $1', ['u-full']);
    expect(ctx.rows[0].active_case_id).toBeNull();
  });

  it('a write the database refuses fails the call and undoes the writes sent before it; the connection serves the next call', async () => {
    const completions = () => log.events.filter((e) => e.fields.event === 'intake.completed' && e.fields.user_id === 'u-refused').length;
    let reply = await handlers.start('u-refused');
    while (reply.question?.number !== TOTAL_QUESTIONS) reply = await answer(handlers, 'u-refused', reply);
    // The completing answer sends: the case status, the answer with its memory row, the
    // completion memory row (refused here), the pointer, then COMMIT.
    await t.pool.query("ALTER TABLE mega_agent.case_memory ADD CONSTRAINT no_completion CHECK (kind <> 'intake_completed') NOT VALID");
    const progressBefore = await tableChecksum(t.pool, 'mega_agent.case_intake_progress', "user_id = 'u-refused'");
    const casesBefore = await tableChecksum(t.pool, 'mega_agent.cases', "user_id = 'u-refused'");
    const memoryBefore = await tableChecksum(t.pool, 'mega_agent.case_memory', "user_id = 'u-refused'");
    try {
      await expect(answer(handlers, 'u-refused', reply)).rejects.toMatchObject({ code: '23514' });
      expect(await tableChecksum(t.pool, 'mega_agent.case_intake_progress', "user_id = 'u-refused'")).toBe(progressBefore);
      expect(await tableChecksum(t.pool, 'mega_agent.cases', "user_id = 'u-refused'")).toBe(casesBefore);
      expect(await tableChecksum(t.pool, 'mega_agent.case_memory', "user_id = 'u-refused'")).toBe(memoryBefore);
      // nothing claims a completion that was rolled back
      expect(completions()).toBe(0);
    } finally {
      await t.pool.query('ALTER TABLE mega_agent.case_memory DROP CONSTRAINT no_completion');
    }
    // Every pooled connection is usable: as many calls as the pool has connections, at once.
    const statuses = await Promise.all(Array.from({ length: 8 }, () => handlers.status('u-refused')));
    expect(statuses.every((s) => s.question?.number === TOTAL_QUESTIONS)).toBe(true);
    expect((await answer(handlers, 'u-refused', reply)).outcome).toBe('completed');
    expect(completions()).toBe(1);
  });

  it("a connection killed while its call waits for the user's lock fails that call only; the next calls are served", async () => {
    const reply = await handlers.start('u-killed');
    const progressBefore = await tableChecksum(t.pool, 'mega_agent.case_intake_progress', "user_id = 'u-killed'");
    const holder = await t.pool.connect();
    try {
      await holder.query('BEGIN');
      await holder.query('SELECT pg_advisory_xact_lock($1, hashtext($2))', [INTAKE_USER_LOCK, 'u-killed']);
      const waiting = answer(handlers, 'u-killed', reply);
      waiting.catch(() => undefined);
      // the call's backend, once it waits for the lock
      let pid: number | undefined;
      for (const deadline = Date.now() + 10_000; pid === undefined && Date.now() < deadline;) {
        const r = await t.pool.query(
          "SELECT pid FROM pg_stat_activity WHERE application_name = $1 AND wait_event_type = 'Lock' AND wait_event = 'advisory'",
          [t.database.identity],
        );
        pid = r.rows[0]?.pid;
      }
      expect(pid).toBeDefined();
      await t.pool.query('SELECT pg_terminate_backend($1)', [pid]);
      await expect(waiting).rejects.toThrow(/terminat|connection/i);
    } finally {
      await holder.query('ROLLBACK');
      holder.release();
    }
    expect(await tableChecksum(t.pool, 'mega_agent.case_intake_progress', "user_id = 'u-killed'")).toBe(progressBefore);
    const statuses = await Promise.all(Array.from({ length: 8 }, () => handlers.status('u-killed')));
    expect(statuses.every((s) => s.question?.number === 1)).toBe(true);
    expect((await answer(handlers, 'u-killed', reply)).outcome).toBe('answered');
  });

  it('an invalid answer re-prompts and changes nothing', async () => {
    let reply = await handlers.start('u-invalid');
    reply = await answer(handlers, 'u-invalid', reply); // full name
    expect(reply.question?.key).toBe('email');
    const before = await tableChecksum(t.pool, 'mega_agent.case_intake_progress', "user_id = 'u-invalid'");
    const memoryBefore = await tableChecksum(t.pool, 'mega_agent.case_memory', "user_id = 'u-invalid'");
    const bad = await handlers.text('u-invalid', 'not-an-email');
    expect(bad.outcome).toBe('reprompted');
    expect(bad.text).toMatch(/email address/);
    expect(bad.question?.key).toBe('email');
    expect(await tableChecksum(t.pool, 'mega_agent.case_intake_progress', "user_id = 'u-invalid'")).toBe(before);
    expect(await tableChecksum(t.pool, 'mega_agent.case_memory', "user_id = 'u-invalid'")).toBe(memoryBefore);
  });

  it('a stale or unknown button is refused without a change; a typed option label is accepted', async () => {
    let reply = await handlers.start('u-buttons');
    while (reply.question?.key !== 'contact_preference') reply = await answer(handlers, 'u-buttons', reply);
    expect(reply.buttons.map((b) => b.data)).toContain('contact_preference=email');
    expect((await handlers.choice('u-buttons', 'full_name=email')).outcome).toBe('reprompted');
    expect((await handlers.choice('u-buttons', 'contact_preference=fax')).outcome).toBe('reprompted');
    const typed = await handlers.text('u-buttons', 'This chat');
    expect(typed.outcome).toBe('answered');
    const p = await t.pool.query('SELECT answers FROM mega_agent.case_intake_progress WHERE user_id = $1', ['u-buttons']);
    expect(p.rows[0].answers.contact_preference).toBe('chat');
  });

  it('status, resume and cancel', async () => {
    let reply = await handlers.start('u-cancel');
    reply = await answer(handlers, 'u-cancel', reply);
    const status = await handlers.status('u-cancel');
    expect(status.text).toMatch(new RegExp(`question 2 of ${TOTAL_QUESTIONS}`));
    // status repeats the current question, so the user can answer it right away
    expect(status.question?.key).toBe('email');
    expect(status.text).toMatch(/email/i);
    const resumed = await handlers.resume('u-cancel');
    expect(resumed.question?.key).toBe('email');
    // An answer would be lost: cancel asks first; "keep going" changes nothing.
    const asked = await handlers.cancel('u-cancel');
    expect(asked.outcome).toBe('confirm_cancel');
    expect(asked.buttons.map((b) => b.data)).toEqual([CANCEL_CONFIRM, CANCEL_KEEP]);
    const kept = await handlers.choice('u-cancel', CANCEL_KEEP);
    expect(kept.question?.key).toBe('email');
    expect((await t.pool.query("SELECT status FROM mega_agent.case_intake_progress WHERE user_id = 'u-cancel'")).rows[0].status).toBe(
      'in_progress',
    );
    await handlers.cancel('u-cancel');
    const cancelled = await handlers.choice('u-cancel', CANCEL_CONFIRM);
    expect(cancelled.outcome).toBe('cancelled');
    const c = await t.pool.query('SELECT status FROM mega_agent.cases WHERE case_id = $1', [reply.caseId]);
    expect(c.rows[0].status).toBe('cancelled');
    expect((await handlers.status('u-cancel')).outcome).toBe('no_intake');
    expect((await handlers.text('u-cancel', 'hello')).outcome).toBe('no_intake');
  });

  it('cancel without any answer needs no confirmation; an unknown /command is never stored as an answer', async () => {
    await handlers.start('u-quick');
    const typo = await handlers.text('u-quick', '/intake_stauts');
    expect(typo.text).toMatch(/^Unknown command \/intake_stauts\. Commands: \/intake_start/);
    const row = await t.pool.query("SELECT answers, current_step FROM mega_agent.case_intake_progress WHERE user_id = 'u-quick'");
    expect(row.rows[0]).toEqual({ answers: {}, current_step: 0 });
    expect((await handlers.cancel('u-quick')).outcome).toBe('cancelled');
  });

  it('start while an intake is in progress continues it instead of opening another case', async () => {
    const first = await handlers.start('u-twice');
    const second = await handlers.start('u-twice');
    expect(second.outcome).toBe('already_in_progress');
    expect(second.caseId).toBe(first.caseId);
    const n = await t.pool.query('SELECT count(*)::int AS n FROM mega_agent.cases WHERE user_id = $1', ['u-twice']);
    expect(n.rows[0].n).toBe(1);
  });

  it('start is atomic: a failure after the case insert leaves neither row', async () => {
    const failing = createIntakeHandlers({
      db: t.database.db,
      shape: await inspectDatabase(t.database.db),
      log,
      afterCaseInsert: () => {
        throw new Error('injected failure between the two writes');
      },
    });
    await expect(failing.start('u-atomic')).rejects.toThrow(/injected failure/);
    const cases = await t.pool.query('SELECT count(*)::int AS n FROM mega_agent.cases WHERE user_id = $1', ['u-atomic']);
    const progress = await t.pool.query('SELECT count(*)::int AS n FROM mega_agent.case_intake_progress WHERE user_id = $1', ['u-atomic']);
    const ctx = await t.pool.query('SELECT count(*)::int AS n FROM mega_agent.bot_user_context WHERE user_id = $1', ['u-atomic']);
    expect([cases.rows[0].n, progress.rows[0].n, ctx.rows[0].n]).toEqual([0, 0, 0]);
  });

  it('25 concurrent starts of one user create exactly one case and one progress row', async () => {
    const replies = await Promise.all(Array.from({ length: 25 }, () => handlers.start('u-race')));
    expect(new Set(replies.map((r) => r.caseId)).size).toBe(1);
    expect(replies.filter((r) => r.outcome === 'started')).toHaveLength(1);
    const cases = await t.pool.query('SELECT count(*)::int AS n FROM mega_agent.cases WHERE user_id = $1', ['u-race']);
    const progress = await t.pool.query('SELECT count(*)::int AS n FROM mega_agent.case_intake_progress WHERE user_id = $1', ['u-race']);
    expect([cases.rows[0].n, progress.rows[0].n]).toEqual([1, 1]);
  });

  it('concurrent starts of different users run side by side', async () => {
    const users = Array.from({ length: 20 }, (_, i) => `u-many-${i}`);
    const replies = await Promise.all(users.map((u) => handlers.start(u)));
    expect(new Set(replies.map((r) => r.caseId)).size).toBe(20);
  });

  it('hostile user ids and answers are stored verbatim', async () => {
    const userId = "x'; DROP TABLE mega_agent.cases; --\t\u00e9\u{1F600}";
    let reply = await handlers.start(userId);
    reply = await handlers.text(userId, "O'Brien \"Robert'); DELETE FROM x; --");
    expect(reply.outcome).toBe('answered');
    const p = await t.pool.query('SELECT answers FROM mega_agent.case_intake_progress WHERE user_id = $1', [userId]);
    expect(p.rows[0].answers.full_name).toBe("O'Brien \"Robert'); DELETE FROM x; --");
  });
});
