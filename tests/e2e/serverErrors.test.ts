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
  const lines = r.stderr
    .trim()
    .split('\n')
    .filter((l) => !l.startsWith('{'));
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

  it('a required column of cases without a default: refused before anything (exit 2) until --case-value gives it', async () => {
    await t.pool.query('ALTER TABLE mega_agent.cases ADD COLUMN tenant_id text NOT NULL');
    const before = await tableChecksum(t.pool, 'mega_agent.cases');
    expectOneLine(
      await cli('recover', '--yes'),
      2,
      /nothing was changed: cases.tenant_id \(text\) is required and has no default: give it with --case-value tenant_id=VALUE/,
    );
    expect(await tableChecksum(t.pool, 'mega_agent.cases')).toBe(before);
    expect((await t.pool.query('SELECT count(*)::int AS n FROM caseguard.runs')).rows[0].n).toBe(0);
    const dry = await cli('recover', '--dry-run');
    expect(dry.code).toBe(0);
    expect(dry.stdout).toMatch(/blocker: cases.tenant_id/);
    const given = await cli('recover', '--yes', '--case-value', 'tenant_id=acme');
    expect(given.code).toBe(0);
    const tenants = await t.pool.query("SELECT DISTINCT tenant_id FROM mega_agent.cases WHERE title = 'Intake Session (Recovered)'");
    expect(tenants.rows).toEqual([{ tenant_id: 'acme' }]);
  });

  it('a unique index that some targets violate: the rest are repaired, the rejected journaled, exit 1 (partial)', async () => {
    await t.pool.query('CREATE UNIQUE INDEX one_recovered_title ON mega_agent.cases (title)');
    const r = await cli('recover', '--yes', '--batch-size', '10');
    expect(r.code, r.stderr).toBe(1);
    expect(r.stdout).toMatch(/Partly recovered/);
    expect(r.stdout).toMatch(/2 target\(s\) were rejected by the database/);
    expect(r.stderr).not.toContain(PII);
    const rejected = await t.pool.query(
      "SELECT after->>'sqlstate' AS sqlstate, after->>'reason' AS reason FROM caseguard.run_items WHERE action = 'rejected'",
    );
    expect(rejected.rows).toHaveLength(2);
    expect(rejected.rows[0]).toMatchObject({ sqlstate: '23505', reason: expect.stringMatching(/one_recovered_title/) });
    expect(JSON.stringify(rejected.rows)).not.toContain(PII);
    const run = await t.pool.query('SELECT status FROM caseguard.runs');
    expect(run.rows).toEqual([{ status: 'partial' }]);
  });

  it('a view on case_id, which would block the type change (0A000), is refused before any change: exit 2', async () => {
    await t.pool.query('DELETE FROM mega_agent.case_intake_progress');
    await t.pool.query('CREATE VIEW mega_agent.progress_cases AS SELECT case_id FROM mega_agent.case_intake_progress');
    expectOneLine(
      await cli('fk', 'add', '--yes', '--strategy', 'rewrite'),
      2,
      /rewrite strategy cannot carry .*view mega_agent\.progress_cases; nothing was changed/,
    );
    const type = await t.pool.query(
      "SELECT data_type FROM information_schema.columns WHERE table_name = 'case_intake_progress' AND column_name = 'case_id'",
    );
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
      expectOneLine(
        await running,
        3,
        /terminating connection due to administrator command.*SQLSTATE 57P01|connection to the database was lost \(Connection terminated/,
      );
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
