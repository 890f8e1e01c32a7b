/**
 * A read-only target (default_transaction_read_only, as a standby's clients see it) and a
 * SELECT-only role: what only reads works, what writes refuses with exit 2 in one line before
 * changing anything, and the dry run writes nothing anywhere.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli.js';
import { createTestDatabase, tableChecksum, type TestDatabase } from '../helpers/db.js';
import { seedDamage } from '../helpers/fixtures.js';

const TABLES = [
  'mega_agent.cases',
  'mega_agent.case_intake_progress',
  'mega_agent.case_memory',
  'mega_agent.bot_user_context',
  'caseguard.runs',
  'caseguard.quarantine',
];

async function checksums(t: TestDatabase): Promise<string[]> {
  return Promise.all(TABLES.map((table) => tableChecksum(t.pool, table)));
}

describe('a read-only database (default_transaction_read_only = on)', () => {
  let t: TestDatabase;
  beforeAll(async () => {
    t = await createTestDatabase();
    await seedDamage(t.pool);
    await t.pool.query(`ALTER DATABASE ${t.name} SET default_transaction_read_only = on`);
  });
  afterAll(() => t?.drop());
  const cli = (...args: string[]) => runCli([...args, '--database-url', t.url]);

  it('scan, runs, quarantine list, fk status and plan, and recover --dry-run work', async () => {
    const before = await checksums(t);
    expect((await cli('scan')).code).toBe(1); // the damage is there: findings, not an error
    expect((await cli('runs')).code).toBe(0);
    expect((await cli('quarantine', 'list')).code).toBe(0);
    expect((await cli('fk', 'status')).code).toBe(0);
    expect((await cli('fk', 'plan')).code).toBe(0);
    const dry = await cli('recover', '--dry-run', '--quarantine');
    expect(dry.stderr).not.toMatch(/internal error/);
    expect(dry.code).toBe(0);
    expect(dry.stdout).toMatch(/cases to create \(missing uuids\)\s*│\s*\d+/);
    expect(await checksums(t)).toEqual(before);
  });

  it.each([
    [['recover', '--yes']],
    [['recover', '--undo', '1', '--yes']],
    [['quarantine', 'restore', '1', '--yes']],
    [['fk', 'add', '--yes']],
    [['fk', 'drop', '--yes']],
    [['migrate']],
    [['simulate', '--users', '2']],
  ])('%s refuses with exit 2 in one line, changing nothing', async (args) => {
    const before = await checksums(t);
    const r = await cli(...args);
    expect(r.code).toBe(2);
    const lines = r.stderr
      .trim()
      .split('\n')
      .filter((l) => l.startsWith('caseguard:'));
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/read-only|there is no run 1/);
    expect(r.stderr).not.toMatch(/\n\s+at |SQLSTATE 25006/);
    expect(await checksums(t)).toEqual(before);
  });
});

describe('a role with only USAGE and SELECT', () => {
  let t: TestDatabase;
  const role = `cg_ro_${randomBytes(3).toString('hex')}`;
  beforeAll(async () => {
    t = await createTestDatabase();
    await seedDamage(t.pool);
    // caseguard's own schema does not exist yet: the dry run must not need it, nor create it.
    await t.pool.query('DROP SCHEMA caseguard CASCADE');
    await t.pool.query(`CREATE ROLE ${role} LOGIN PASSWORD 'ro-pass'; GRANT CONNECT ON DATABASE ${t.name} TO ${role};
      GRANT USAGE ON SCHEMA mega_agent TO ${role}; GRANT SELECT ON ALL TABLES IN SCHEMA mega_agent TO ${role}`);
  });
  afterAll(async () => {
    await t.pool.query(`REVOKE ALL ON ALL TABLES IN SCHEMA mega_agent FROM ${role}; REVOKE ALL ON SCHEMA mega_agent FROM ${role};
      REVOKE ALL ON DATABASE ${t.name} FROM ${role}; DROP ROLE ${role}`);
    await t?.drop();
  });

  const roleUrl = () => {
    const url = new URL(t.url);
    url.username = role;
    url.password = 'ro-pass';
    return url;
  };

  it('simulate, whose every user fails for the missing privilege, exits 3 (not 0)', async () => {
    const r = await runCli(['simulate', '--users', '3', '--database-url', roleUrl().toString()]);
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(/every failing user failed for a privilege or the connection \(3 of 3\): permission denied/);
    expect(r.stderr).not.toMatch(/ro-pass|\n\s+at /);
  });

  it('recover --dry-run prints the plan, exit 0, and schema caseguard still does not exist', async () => {
    const url = roleUrl();
    const before = await Promise.all(TABLES.slice(0, 4).map((table) => tableChecksum(t.pool, table)));
    const dry = await runCli(['recover', '--dry-run', '--database-url', url.toString()]);
    expect(dry.stderr).not.toMatch(/internal error|ro-pass/);
    expect(dry.code).toBe(0);
    expect(dry.stdout).toMatch(/Recovery plan \(dry run, nothing journaled/);
    const schema = await t.pool.query("SELECT count(*)::int AS n FROM pg_namespace WHERE nspname = 'caseguard'");
    expect(schema.rows[0].n).toBe(0);
    expect(await Promise.all(TABLES.slice(0, 4).map((table) => tableChecksum(t.pool, table)))).toEqual(before);
  });
});
