/** Live writers during `fk add --strategy online` see no error and lose nothing. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inspectDatabase } from '../../src/core/db/inspect.js';
import { readFkState } from '../../src/core/fk/state.js';
import { createIntakeHandlers } from '../../src/core/intake/handlers.js';
import { silentLogger } from '../../src/core/logger.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { runFkAdd } from '../helpers/fk.js';
import { answer } from '../helpers/intake.js';

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
    expect((await readFkState(t.database.db)).foreignKey?.validated).toBe(true);
    const rows = await t.pool.query(
      "SELECT count(*)::int AS n, count(*) FILTER (WHERE jsonb_typeof(answers->'phone') = 'string')::int AS answered FROM mega_agent.case_intake_progress WHERE user_id LIKE 'live-%'",
    );
    expect(rows.rows[0]).toEqual({ n: written.length, answered: written.length });
    const orphans = await t.pool.query(
      'SELECT count(*)::int AS n FROM mega_agent.case_intake_progress p WHERE NOT EXISTS (SELECT 1 FROM mega_agent.cases c WHERE c.case_id = p.case_id)',
    );
    expect(orphans.rows[0].n).toBe(0);
  });
});
