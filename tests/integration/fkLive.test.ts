/** Live writers during `fk add --strategy online` see no error and lose nothing. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inspectDatabase } from '../../src/core/db/inspect.js';
import { readFkState } from '../../src/core/fk/state.js';
import { CANCEL_CONFIRM, createIntakeHandlers } from '../../src/core/intake/handlers.js';
import { silentLogger } from '../../src/core/logger.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { runFkAdd } from '../helpers/fk.js';
import { TOTAL_QUESTIONS } from '../../src/core/intake/questionnaire.js';
import { answer, completeIntake } from '../helpers/intake.js';

describe('online fk add with live writers', () => {
  let t: TestDatabase;
  beforeAll(async () => {
    t = await createTestDatabase({ poolSize: 12 });
    await t.pool.query(
      `INSERT INTO mega_agent.cases (case_id, user_id, title) SELECT gen_random_uuid(), 'seed-' || g, 'x' FROM generate_series(1, 20000) g;
       INSERT INTO mega_agent.case_intake_progress (user_id, case_id) SELECT user_id, case_id::text FROM mega_agent.cases`,
    );
  });
  afterAll(() => t?.drop());

  it('writers keep going through every step; every write is there afterwards', async () => {
    // The writers run on their own pool: the handlers are built on the legacy shape and must keep
    // working across the swap without being rebuilt.
    const handlers = createIntakeHandlers({ db: t.database.db, shape: await inspectDatabase(t.database.db), log: silentLogger });
    let stop = false;
    const errors: string[] = [];
    const written: string[] = [];
    const writer = async (w: number) => {
      for (let i = 0; !stop; i++) {
        const user = `live-${w}-${i}`;
        try {
          let reply = await handlers.start(user);
          for (let k = 0; k < 3; k++) reply = await answer(handlers, user, reply);
          written.push(user);
        } catch (error) {
          errors.push((error as Error).message);
        }
      }
    };
    const writers = [1, 2, 3, 4].map(writer);
    const result = await runFkAdd(t, { strategy: 'online', batchSize: 2000 });
    stop = true;
    await Promise.all(writers);
    expect(errors).toEqual([]);
    expect(written.length).toBeGreaterThan(10);
    expect(result.backfilled).toBeGreaterThanOrEqual(20000);
    expect((await readFkState(t.database.db))!.foreignKey?.validated).toBe(true);
    const rows = await t.pool.query(
      "SELECT count(*)::int AS n, count(*) FILTER (WHERE jsonb_typeof(answers->'phone') = 'string')::int AS answered FROM mega_agent.case_intake_progress WHERE user_id LIKE 'live-%'",
    );
    expect(rows.rows[0]).toEqual({ n: written.length, answered: written.length });
    const orphans = await t.pool.query(
      'SELECT count(*)::int AS n FROM mega_agent.case_intake_progress p WHERE NOT EXISTS (SELECT 1 FROM mega_agent.cases c WHERE c.case_id = p.case_id)',
    );
    expect(orphans.rows[0].n).toBe(0);
  });

  it.each(['cancel', 'complete'] as const)('%s takes cases before progress, as add_fk does: the two never deadlock', async (action) => {
    const handlers = createIntakeHandlers({ db: t.database.db, shape: await inspectDatabase(t.database.db), log: silentLogger });
    const user = `order-${action}`;
    let reply = await handlers.start(user);
    // one answer given (so cancel asks to confirm), and for complete: every answer but the last
    reply = await answer(handlers, user, reply);
    while (action === 'complete' && reply.question!.number < TOTAL_QUESTIONS) reply = await answer(handlers, user, reply);
    const ddl = await t.pool.connect();
    try {
      // What add_fk does: cases, then progress, in SHARE ROW EXCLUSIVE.
      await ddl.query("BEGIN; SET LOCAL lock_timeout = '10s'; SET LOCAL deadlock_timeout = '100ms'");
      await ddl.query('LOCK TABLE mega_agent.cases IN SHARE ROW EXCLUSIVE MODE');
      const pending =
        action === 'cancel'
          ? handlers.choice(user, CANCEL_CONFIRM).catch((e: Error) => e)
          : answer(handlers, user, reply).catch((e: Error) => e);
      // the handler now waits for cases
      for (let i = 0; i < 200; i++) {
        const waiting = await t.pool.query(
          "SELECT count(*)::int AS n FROM pg_locks WHERE relation = 'mega_agent.cases'::regclass AND NOT granted",
        );
        if (waiting.rows[0].n > 0) break;
        await new Promise((resolve) => setTimeout(resolve, 25));
      }
      // Had it written progress first, this would be a deadlock (40P01) for one of the two.
      await ddl.query('LOCK TABLE mega_agent.case_intake_progress IN SHARE ROW EXCLUSIVE MODE');
      await ddl.query('ROLLBACK');
      const outcome = await pending;
      expect(outcome).not.toBeInstanceOf(Error);
      expect((outcome as { outcome: string }).outcome).toBe(action === 'cancel' ? 'cancelled' : 'completed');
    } finally {
      ddl.release();
    }
  });

  it('bot-like writers cancelling and completing in a loop during fk add: no application error', async () => {
    const fresh = await createTestDatabase({ poolSize: 12 });
    try {
      await fresh.pool.query(
        `INSERT INTO mega_agent.cases (case_id, user_id, title) SELECT gen_random_uuid(), 'seed-' || g, 'x' FROM generate_series(1, 20000) g;
         INSERT INTO mega_agent.case_intake_progress (user_id, case_id) SELECT user_id, case_id::text FROM mega_agent.cases`,
      );
      const handlers = createIntakeHandlers({ db: fresh.database.db, shape: await inspectDatabase(fresh.database.db), log: silentLogger });
      let stop = false;
      const errors: string[] = [];
      let done = 0;
      const writer = async (w: number) => {
        for (let i = 0; !stop; i++) {
          const user = `loop-${w}-${i}`;
          try {
            const started = await handlers.start(user);
            const end = i % 2 === 0 ? await handlers.cancel(user) : await completeIntake(handlers, user, started);
            if (end.outcome !== 'cancelled' && end.outcome !== 'completed') throw new Error(`ended ${end.outcome}`);
            done++;
          } catch (error) {
            errors.push((error as Error).message);
          }
        }
      };
      const writers = [1, 2, 3, 4].map(writer);
      const result = await runFkAdd(fresh, { strategy: 'online', batchSize: 2000 });
      stop = true;
      await Promise.all(writers);
      expect(errors).toEqual([]);
      expect(done).toBeGreaterThan(10);
      expect(result.steps.map((s) => s.status).every((s) => s === 'done')).toBe(true);
      expect((await readFkState(fresh.database.db))!.foreignKey?.validated).toBe(true);
    } finally {
      await fresh.drop();
    }
  });
});
