/**
 * fk add beside the application's own schema: what depends on case_id is carried or refused
 * before any change; partitioned progress is refused before any change; a partial online run
 * is undone by fk abort to the shape it had, byte for byte. On a real server.
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { UsageError } from '../../src/core/errors.js';
import { fkStatus } from '../../src/core/fk/fk.js';
import { readFkState } from '../../src/core/fk/state.js';
import { inspectDatabase } from '../../src/core/db/inspect.js';
import { adminUrl, createTestDatabase, tableChecksum, type TestDatabase } from '../helpers/db.js';
import { seedControls } from '../helpers/fixtures.js';
import { runFkAbort, runFkAdd, tableShape } from '../helpers/fk.js';

describe('fk add and the application schema', () => {
  let t: TestDatabase;
  let role: string;
  beforeEach(async () => {
    t = await createTestDatabase();
    await seedControls(t.pool);
    role = `cg_app_${randomBytes(4).toString('hex')}`;
    await t.pool.query(`CREATE ROLE ${role}`);
  });
  afterEach(async () => {
    await t?.drop();
    const admin = new pg.Client({ connectionString: adminUrl() });
    await admin.connect();
    await admin.query(`DROP ROLE IF EXISTS ${role}`);
    await admin.end();
  });

  async function addAppSchema(options: { view: boolean }) {
    await t.pool.query(`
      ALTER TABLE mega_agent.case_intake_progress ADD COLUMN tenant_id text NOT NULL DEFAULT 'tenant-1';
      ALTER TABLE mega_agent.case_intake_progress DROP CONSTRAINT case_intake_progress_user_id_case_id_pk;
      ALTER TABLE mega_agent.case_intake_progress ADD CONSTRAINT "Progress PK" PRIMARY KEY (tenant_id, user_id, case_id);
      CREATE INDEX "App Case Status" ON mega_agent.case_intake_progress (case_id, status);
      ALTER TABLE mega_agent.case_intake_progress ADD CONSTRAINT "case_id not nil" CHECK (case_id::uuid IS DISTINCT FROM '00000000-0000-0000-0000-000000000000');
      GRANT SELECT (case_id) ON mega_agent.case_intake_progress TO ${role};
      COMMENT ON COLUMN mega_agent.case_intake_progress.case_id IS 'the case, as the bot''s "start" wrote it'`);
    if (options.view)
      await t.pool.query(
        'CREATE VIEW mega_agent.open_intakes AS SELECT user_id, case_id FROM mega_agent.case_intake_progress WHERE status = $$in_progress$$',
      );
  }

  it('status lists what depends on case_id and how each strategy carries it', async () => {
    await addAppSchema({ view: true });
    const status = await fkStatus(t.database, await inspectDatabase(t.database.db));
    const byName = Object.fromEntries(status.references[0]!.state!.dependents.map((d) => [`${d.kind} ${d.name}`, d.carried]));
    expect(Object.keys(byName).sort()).toEqual(
      [
        'comment comment on case_id',
        'constraint case_id not nil',
        `grant ${role}`,
        'index App Case Status',
        'primary_key Progress PK',
        'view mega_agent.open_intakes',
      ].sort(),
    );
    expect(byName['primary_key Progress PK']).toEqual({ online: null, rewrite: expect.stringContaining('all its columns') });
    expect(byName[`grant ${role}`]!.online).toMatch(/re-issued/);
    expect(byName['view mega_agent.open_intakes']).toEqual({ online: null, rewrite: null });
    expect(byName['index App Case Status']!.online).toMatch(/built again CONCURRENTLY/);
    expect(status.references[0]!.refusal).toMatch(/online strategy cannot carry .*view mega_agent\.open_intakes.*drop them/);
    expect(status.references[0]!.refusal).not.toMatch(/App Case Status/);
  });

  it.each(['online', 'rewrite'] as const)('%s: a view on case_id is refused before any change; nothing changes', async (strategy) => {
    await addAppSchema({ view: true });
    const before = [await tableShape(t.pool), await tableChecksum(t.pool, 'mega_agent.case_intake_progress')];
    const error = await runFkAdd(t, { strategy }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(UsageError);
    expect((error as Error).message).toMatch(/cannot carry .*view mega_agent\.open_intakes.*nothing was changed/);
    expect([await tableShape(t.pool), await tableChecksum(t.pool, 'mega_agent.case_intake_progress')]).toEqual(before);
    const runs = await t.pool.query("SELECT count(*)::int AS n FROM caseguard.runs WHERE command = 'fk add'");
    expect(runs.rows[0].n).toBe(0);
  });

  it('online refuses the index, CHECK and wider primary key, naming --strategy rewrite; rewrite carries every one', async () => {
    await addAppSchema({ view: false });
    const error = await runFkAdd(t, { strategy: 'online' }).catch((e: unknown) => e);
    expect((error as Error).message).toMatch(/--strategy rewrite carries them/);
    const positionBefore = (await readFkState(t.database.db))!.columnPosition;
    await runFkAdd(t, { strategy: 'rewrite' });
    const state = (await readFkState(t.database.db))!;
    expect(state).toMatchObject({ columnType: 'uuid', foreignKey: { validated: true }, columnPosition: positionBefore });
    expect(state.primaryKey?.columns).toEqual(['tenant_id', 'user_id', 'case_id']);
    const shape = JSON.parse(await tableShape(t.pool)) as {
      indexes: string[];
      constraints: string[];
      columns: Array<{ name: string; acl: string | null; comment: string | null }>;
    };
    expect(shape.indexes.some((i) => i.includes('"App Case Status"') && i.includes('(case_id, status)'))).toBe(true);
    expect(shape.constraints.some((c) => c.startsWith('case_id not nil CHECK'))).toBe(true);
    // the CHECK still rejects
    await t.pool.query(
      "INSERT INTO mega_agent.cases (case_id, user_id, title) VALUES ('00000000-0000-0000-0000-000000000000', 'nil', 'x')",
    );
    await expect(
      t.pool.query("INSERT INTO mega_agent.case_intake_progress (user_id, case_id) VALUES ('nil', '00000000-0000-0000-0000-000000000000')"),
    ).rejects.toThrow(/case_id not nil/);
    const column = shape.columns.find((c) => c.name === 'case_id')!;
    expect(column.comment).toBe('the case, as the bot\'s "start" wrote it');
    expect(column.acl).toContain(role);
  });

  it("online builds the application's plain indexes again on the uuid column under their names; an expression index is refused", async () => {
    await t.pool.query(`
      CREATE INDEX "App Case Status" ON mega_agent.case_intake_progress (case_id, status);
      CREATE UNIQUE INDEX memory_case_kind ON mega_agent.case_memory (case_id, kind, memory_id);
      CREATE INDEX pointers_by_case ON mega_agent.bot_user_context USING hash (active_case_id)`);
    await runFkAdd(t, { strategy: 'online' });
    const defs = (
      await t.pool.query(`SELECT indexrelid::regclass::text AS name, pg_get_indexdef(indexrelid) AS def FROM pg_index
       WHERE indrelid IN ('mega_agent.case_intake_progress'::regclass, 'mega_agent.case_memory'::regclass, 'mega_agent.bot_user_context'::regclass)`)
    ).rows;
    const def = (name: string) => defs.find((d) => d.name === name)?.def;
    expect(def('mega_agent."App Case Status"')).toMatch(/USING btree \(case_id, status\)/);
    expect(def('mega_agent.memory_case_kind')).toMatch(/CREATE UNIQUE INDEX memory_case_kind .* USING btree \(case_id, kind, memory_id\)/);
    expect(def('mega_agent.pointers_by_case')).toMatch(/USING hash \(active_case_id\)/);
    const types = await t.pool.query(`SELECT a.attrelid::regclass::text AS t, format_type(a.atttypid, NULL) AS type FROM pg_attribute a
       WHERE a.attname IN ('case_id', 'active_case_id') AND a.attrelid IN ('mega_agent.case_intake_progress'::regclass, 'mega_agent.case_memory'::regclass, 'mega_agent.bot_user_context'::regclass)`);
    expect(types.rows.every((r) => r.type === 'uuid')).toBe(true);
    expect(defs.filter((d) => d.name.includes('caseguard_carry'))).toEqual([]);

    const other = await createTestDatabase();
    try {
      await other.pool.query('CREATE INDEX memory_case_lower ON mega_agent.case_memory (lower(case_id))');
      const error = await runFkAdd(other, { strategy: 'online' }).catch((e: unknown) => e);
      expect((error as Error).message).toMatch(/cannot carry what depends on case_memory\.case_id: index memory_case_lower/);
    } finally {
      await other.drop();
    }
  });

  it('online carries the column grant and the comment through the swap, and a primary key named with quotes and spaces', async () => {
    await t.pool.query(`
      ALTER TABLE mega_agent.case_intake_progress RENAME CONSTRAINT case_intake_progress_user_id_case_id_pk TO "Progress ""Key""; --";
      GRANT SELECT (case_id), UPDATE (case_id) ON mega_agent.case_intake_progress TO ${role};
      COMMENT ON COLUMN mega_agent.case_intake_progress.case_id IS 'it''s the case'`);
    await runFkAdd(t, { strategy: 'online' });
    const r = await t.pool.query(
      `SELECT format_type(a.atttypid, NULL) AS type, col_description(a.attrelid, a.attnum) AS comment,
              has_column_privilege('${role}', a.attrelid, a.attnum, 'SELECT') AS can_select,
              has_column_privilege('${role}', a.attrelid, a.attnum, 'UPDATE') AS can_update
         FROM pg_attribute a WHERE a.attrelid = 'mega_agent.case_intake_progress'::regclass AND a.attname = 'case_id'`,
    );
    expect(r.rows[0]).toEqual({ type: 'uuid', comment: "it's the case", can_select: true, can_update: true });
    expect((await readFkState(t.database.db))!.primaryKey).toEqual({ name: 'Progress "Key"; --', columns: ['user_id', 'case_id'] });
  });
});

describe('fk abort', () => {
  let t: TestDatabase;
  beforeEach(async () => {
    t = await createTestDatabase();
    await seedControls(t.pool);
    await t.pool.query(
      `INSERT INTO mega_agent.cases (case_id, user_id, title) SELECT gen_random_uuid(), 'bulk-' || g, 'x' FROM generate_series(1, 300) g;
       INSERT INTO mega_agent.case_intake_progress (user_id, case_id) SELECT user_id, case_id::text FROM mega_agent.cases WHERE user_id LIKE 'bulk-%'`,
    );
  });
  afterEach(() => t?.drop());

  /** Each reference's table, and a write its sync trigger rejects (a value that is no uuid). */
  const TABLES = {
    progress: {
      table: 'mega_agent.case_intake_progress',
      invalid: "INSERT INTO mega_agent.case_intake_progress (user_id, case_id) VALUES ('u-x', 'not-a-uuid')",
    },
    memory: {
      table: 'mega_agent.case_memory',
      invalid: "INSERT INTO mega_agent.case_memory (case_id, user_id, kind, content) VALUES ('not-a-uuid', 'u-x', 'note', '{}')",
    },
    active_case: {
      table: 'mega_agent.bot_user_context',
      invalid: "INSERT INTO mega_agent.bot_user_context (user_id, active_case_id) VALUES ('u-x', 'not-a-uuid')",
    },
  } as const;

  it.each([
    'progress.sync_trigger',
    'progress.backfill',
    'progress.validate_not_null',
    'progress.unique_index',
    'memory.backfill',
    'active_case.sync_trigger',
  ])('after a failure following %s: status says partial; abort restores the previous shape byte for byte', async (failAfter) => {
    const reference = failAfter.split('.')[0] as keyof typeof TABLES;
    const { table, invalid } = TABLES[reference];
    const before = [await tableShape(t.pool, table), await tableChecksum(t.pool, table)];
    const error = await runFkAdd(t, {
      afterStep: (step) => {
        if (step === failAfter) throw new Error(`injected failure after ${failAfter}`);
      },
    }).catch((e: unknown) => e);
    expect((error as Error).message).toMatch(/injected/);
    const phase = async () =>
      (await fkStatus(t.database, await inspectDatabase(t.database.db))).references.find((r) => r.reference === reference)!.phase;
    expect(await phase()).toBe('partial');
    // the sync trigger now rejects a value that is no uuid
    await expect(t.pool.query(invalid)).rejects.toThrow(/invalid input syntax for type uuid/);
    const result = await runFkAbort(t);
    expect(result.removed[0]).toMatch(/^trigger /);
    expect([await tableShape(t.pool, table), await tableChecksum(t.pool, table)]).toEqual(before);
    expect(await phase()).toBe('not_started');
    // writers are no longer checked against a shadow column
    await t.pool.query(invalid);
    const again = await runFkAbort(t);
    expect(again.removed).toEqual([]);
  });

  it('refuses past the swap and points at fk add and fk drop', async () => {
    await runFkAdd(t, {
      afterStep: (step) => {
        if (step === 'progress.swap') throw new Error('injected');
      },
    }).catch(() => undefined);
    const error = await runFkAbort(t).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(UsageError);
    expect((error as Error).message).toMatch(/past its swap.*fk add finishes it.*fk drop --revert-type/);
  });
});

describe('partitioned progress', () => {
  it.each(['hash', 'range'])('%s-partitioned: status, plan and add refuse before any change, with the manual path', async (kind) => {
    const t = await createTestDatabase();
    try {
      await t.pool.query(`
        ALTER TABLE mega_agent.case_intake_progress RENAME TO progress_old;
        CREATE TABLE mega_agent.case_intake_progress (LIKE mega_agent.progress_old INCLUDING DEFAULTS, PRIMARY KEY (user_id, case_id, created_at))
          PARTITION BY ${kind === 'hash' ? 'HASH (user_id)' : 'RANGE (created_at)'};
        ${
          kind === 'hash'
            ? `CREATE TABLE mega_agent.progress_p0 PARTITION OF mega_agent.case_intake_progress FOR VALUES WITH (MODULUS 2, REMAINDER 0);
             CREATE TABLE mega_agent.progress_p1 PARTITION OF mega_agent.case_intake_progress FOR VALUES WITH (MODULUS 2, REMAINDER 1);`
            : `CREATE TABLE mega_agent.progress_2026 PARTITION OF mega_agent.case_intake_progress FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
             CREATE TABLE mega_agent.progress_default PARTITION OF mega_agent.case_intake_progress DEFAULT;`
        }
        DROP TABLE mega_agent.progress_old`);
      await seedControls(t.pool);
      const before = [await tableShape(t.pool), await tableChecksum(t.pool, 'mega_agent.case_intake_progress')];
      const status = await fkStatus(t.database, await inspectDatabase(t.database.db));
      expect(status.references[0]!.refusal).toMatch(/partitioned.*nothing was changed.*ATTACH PARTITION/);
      for (const strategy of ['online', 'rewrite'] as const) {
        const error = await runFkAdd(t, { strategy }).catch((e: unknown) => e);
        expect(error).toBeInstanceOf(UsageError);
        expect((error as Error).message).toMatch(/is partitioned/);
      }
      expect([await tableShape(t.pool), await tableChecksum(t.pool, 'mega_agent.case_intake_progress')]).toEqual(before);
    } finally {
      await t.drop();
    }
  });
});
