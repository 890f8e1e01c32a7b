import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inspectDatabase } from '../../src/core/db/inspect.js';
import { migrate } from '../../src/core/db/migrate.js';
import { SchemaError } from '../../src/core/errors.js';
import { createTestDatabase, toUuidShape, type TestDatabase } from '../helpers/db.js';

describe('migrate on an empty database', () => {
  let t: TestDatabase;
  beforeAll(async () => {
    t = await createTestDatabase({ empty: true });
  });
  afterAll(() => t?.drop());

  it('reports exit-4 shape errors naming what is missing before it runs', async () => {
    const error = await inspectDatabase(t.database.db).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SchemaError);
    expect((error as SchemaError).missing).toEqual(['table mega_agent.cases', 'table mega_agent.case_intake_progress']);
    expect((error as SchemaError).message).toMatch(/caseguard migrate/);
  });

  it('three concurrent migrates all succeed, and apply each migration once', async () => {
    const pools = [1, 2, 3].map(() => new pg.Pool({ connectionString: t.url, max: 1 }));
    try {
      const results = await Promise.all(pools.map((p) => migrate(p)));
      const applied = results.map((r) => r.applied.contract + r.applied.journal);
      expect(applied.reduce((a, b) => a + b, 0)).toBe(results[0]!.known.contract + results[0]!.known.journal);
    } finally {
      await Promise.all(pools.map((p) => p.end()));
    }
    const shape = await inspectDatabase(t.database.db);
    expect(shape).toMatchObject({ shape: 'legacy', hasMemory: true, hasUserContext: true, hasJournal: true });
    expect(shape.foreignKey).toBeUndefined();
    const again = await migrate(t.database.pool);
    expect(again.applied).toEqual({ contract: 0, journal: 0 });
  });
});

describe('migrate on a database the application created', () => {
  let t: TestDatabase;
  beforeAll(async () => {
    t = await createTestDatabase({ empty: true });
    await t.pool.query(`
      CREATE SCHEMA mega_agent;
      CREATE TABLE mega_agent.cases (case_id uuid PRIMARY KEY DEFAULT gen_random_uuid(), user_id text NOT NULL,
        title text NOT NULL, status text NOT NULL DEFAULT 'open', metadata jsonb NOT NULL DEFAULT '{}',
        created_at timestamptz NOT NULL DEFAULT now(), updated_at timestamptz NOT NULL DEFAULT now(),
        tenant text NOT NULL DEFAULT 'main');
      CREATE TABLE mega_agent.case_intake_progress (user_id text NOT NULL, case_id text NOT NULL,
        current_block text, current_step integer NOT NULL DEFAULT 0, completed_blocks text[] NOT NULL DEFAULT '{}',
        answers jsonb NOT NULL DEFAULT '{}', status text NOT NULL DEFAULT 'in_progress',
        created_at timestamptz NOT NULL DEFAULT now(), updated_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (user_id, case_id));`);
  });
  afterAll(() => t?.drop());

  it("leaves the application tables as they are and adds only caseguard's schema", async () => {
    const result = await migrate(t.database.pool);
    expect(result.contractPresent).toBe(true);
    expect(result.applied).toEqual({ contract: 0, journal: result.known.journal });
    const shape = await inspectDatabase(t.database.db);
    expect(shape).toMatchObject({ shape: 'legacy', hasMemory: false, hasUserContext: false, hasJournal: true });
    const extra = await t.pool.query(
      "SELECT count(*)::int AS n FROM information_schema.columns WHERE table_schema = 'mega_agent' AND column_name = 'tenant'",
    );
    expect(extra.rows[0].n).toBe(1);
  });
});

describe('shape detection', () => {
  let t: TestDatabase;
  beforeAll(async () => {
    t = await createTestDatabase();
  });
  afterAll(() => t?.drop());

  it('names a missing required column', async () => {
    await t.pool.query('ALTER TABLE mega_agent.case_intake_progress RENAME COLUMN answers TO answers_old');
    await expect(inspectDatabase(t.database.db)).rejects.toThrow(/column mega_agent.case_intake_progress.answers/);
    await t.pool.query('ALTER TABLE mega_agent.case_intake_progress RENAME COLUMN answers_old TO answers');
  });

  it('sees the uuid shape and its validated foreign key', async () => {
    await toUuidShape(t.pool);
    const shape = await inspectDatabase(t.database.db);
    expect(shape.shape).toBe('uuid');
    expect(shape.foreignKey).toEqual({ name: 'fk_case_intake_progress_case', validated: true, onDeleteCascade: true });
  });

  it('names every column caseguard reads that an optional table lacks; an absent one is fine', async () => {
    await t.pool.query('ALTER TABLE mega_agent.case_memory DROP COLUMN memory_id, DROP COLUMN created_at');
    const error = await inspectDatabase(t.database.db).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SchemaError);
    expect((error as SchemaError).missing).toEqual(['column mega_agent.case_memory.memory_id', 'column mega_agent.case_memory.created_at']);
    await t.pool.query('DROP TABLE mega_agent.case_memory');
    expect((await inspectDatabase(t.database.db)).hasMemory).toBe(false);
  });
});
