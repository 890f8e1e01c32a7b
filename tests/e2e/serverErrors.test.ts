/**
 * Server errors a DBA can meet, provoked for real through the built binary: each is one line
 * with its exit code and next step, no stack, and never a query parameter or row value (the
 * orphans' user ids below stand in for personal data).
 */
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { runCli, type CliResult } from '../helpers/cli.js';
import { createTestDatabase, tableChecksum, type TestDatabase } from '../helpers/db.js';

const PII = 'alice.personal@example.com';

function expectOneLine(r: CliResult, code: number, pattern: RegExp): void {
  expect(r.code, r.stderr).toBe(code);
  const lines = r.stderr.trim().split('\n').filter((l) => !l.startsWith('{'));
  expect(lines).toHaveLength(1);
  expect(lines[0]).toMatch(pattern);
  expect(r.stderr).not.toMatch(/\n\s+at |internal error/);
  expect(r.stderr).not.toContain(PII);
}

describe('server errors', () => {
  let t: TestDatabase;
  beforeEach(async () => {
    t = await createTestDatabase();
    await t.pool.query(
      `INSERT INTO mega_agent.case_intake_progress (user_id, case_id, current_block, answers)
       SELECT $1 || g, gen_random_uuid()::text, 'contact', jsonb_build_object('email', $1) FROM generate_series(1, 3) g`,
      [PII],
    );
  });
  afterEach(() => t?.drop());
  const cli = (...args: string[]) => runCli([...args, '--database-url', t.url, '--log-level', 'error']);

  it('a required column of cases without a default (23502): exit 4, nothing written', async () => {
    await t.pool.query("ALTER TABLE mega_agent.cases ADD COLUMN tenant_id text NOT NULL");
    const before = await tableChecksum(t.pool, 'mega_agent.cases');
    expectOneLine(await cli('recover', '--yes'), 4, /constraint or trigger rejected a write: null value in column "tenant_id".*SQLSTATE 23502/);
    expect(await tableChecksum(t.pool, 'mega_agent.cases')).toBe(before);
  });

  it('a unique index the targets violate (23505): exit 4', async () => {
    await t.pool.query("CREATE UNIQUE INDEX one_title ON mega_agent.cases (title)");
    expectOneLine(await cli('recover', '--yes'), 4, /duplicate key value violates unique constraint "one_title".*SQLSTATE 23505/);
  });

  it("the application's trigger raising (P0001): exit 4", async () => {
    await t.pool.query(`CREATE FUNCTION mega_agent.no_maintenance() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN RAISE EXCEPTION 'cases are created by the app only'; END $$;
      CREATE TRIGGER no_maintenance BEFORE INSERT ON mega_agent.cases FOR EACH ROW EXECUTE FUNCTION mega_agent.no_maintenance()`);
    expectOneLine(await cli('recover', '--yes'), 4, /cases are created by the app only.*SQLSTATE P0001/);
  });

  it('a view on case_id blocks the type change (0A000): exit 4, nothing changed', async () => {
    await t.pool.query('DELETE FROM mega_agent.case_intake_progress');
    await t.pool.query('CREATE VIEW mega_agent.progress_cases AS SELECT case_id FROM mega_agent.case_intake_progress');
    expectOneLine(await cli('fk', 'add', '--yes', '--strategy', 'rewrite'), 4, /cannot alter type of a column used by a view or rule.*SQLSTATE 0A000/);
    const type = await t.pool.query("SELECT data_type FROM information_schema.columns WHERE table_name = 'case_intake_progress' AND column_name = 'case_id'");
    expect(type.rows[0].data_type).toBe('text');
  });

  it('an optional table without a column caseguard reads: exit 4 naming it', async () => {
    await t.pool.query('ALTER TABLE mega_agent.case_memory DROP COLUMN created_at');
    expectOneLine(await cli('scan'), 4, /missing: column mega_agent.case_memory.created_at/);
  });

  it('the session terminated by an administrator mid-scan (57P01): exit 3', async () => {
    const blocker = await t.pool.connect();
    try {
      await blocker.query('BEGIN');
      await blocker.query('LOCK TABLE mega_agent.case_intake_progress IN ACCESS EXCLUSIVE MODE');
      const running = cli('scan');
      // Wait until the scan waits on the lock, then end its session as a DBA would.
      for (let i = 0; i < 400; i++) {
        const r = await t.pool.query(
          "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND application_name LIKE 'caseguard scan %' AND wait_event_type = 'Lock'",
        );
        if (r.rows.length > 0) break;
        await new Promise((resolve) => setTimeout(resolve, 25));
      }
      // The driver may report the ended session (57P01) or the closed socket first: either way, exit 3.
      expectOneLine(await running, 3, /terminating connection due to administrator command.*SQLSTATE 57P01|connection to the database was lost \(Connection terminated/);
    } finally {
      await blocker.query('ROLLBACK');
      blocker.release();
    }
  });

  it('--output naming a folder, or a folder that does not exist: exit 2 before scanning', async () => {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'caseguard-out-'));
    try {
      expectOneLine(await cli('scan', '--output', dir), 2, new RegExp(`cannot write ${dir}: EISDIR`));
      expectOneLine(await cli('scan', '--output', path.join(dir, 'missing', 'x.json')), 2, /cannot write .*missing\/x.json: ENOENT/);
      expect(await fs.readdir(dir)).toEqual(['missing'].filter(() => false));
    } finally {
      await fs.rm(dir, { recursive: true, force: true });
    }
  });
});
