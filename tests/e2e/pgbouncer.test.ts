/**
 * Through a real PgBouncer: with its default (session) pooling every command works; with
 * pool_mode=transaction, scan, simulate and dry runs work and every command that needs the
 * session run lock refuses with exit 2 before changing anything. Afterwards no server
 * connection holds a caseguard lock or carries a caseguard setting.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import { runCli } from '../helpers/cli.js';
import { adminUrl, createTestDatabase, tableChecksum, type TestDatabase } from '../helpers/db.js';
import { seedDamage } from '../helpers/fixtures.js';
import { startPgBouncer, type PgBouncer } from '../helpers/pgbouncer.js';

/** Every server connection of the pooler's pool, each pinned by an open transaction. */
async function serverSessions(
  url: string,
  n: number,
): Promise<Array<{ lock_timeout: string; statement_timeout: string; check_interval: string | null; advisory: number }>> {
  const clients = Array.from({ length: n }, () => new pg.Client({ connectionString: url }));
  try {
    await Promise.all(clients.map((c) => c.connect()));
    const rows = [];
    for (const c of clients) {
      await c.query('BEGIN');
      const r =
        await c.query(`SELECT current_setting('lock_timeout') AS lock_timeout, current_setting('statement_timeout') AS statement_timeout,
                                      current_setting('client_connection_check_interval', true) AS check_interval,
                                      (SELECT count(*)::int FROM pg_locks WHERE pid = pg_backend_pid() AND locktype = 'advisory') AS advisory`);
      rows.push(r.rows[0]);
    }
    return rows;
  } finally {
    await Promise.all(
      clients.map((c) =>
        c
          .query('ROLLBACK')
          .catch(() => undefined)
          .then(() => c.end()),
      ),
    );
  }
}

async function caseguardLocks(t: TestDatabase): Promise<number> {
  const r = await t.pool.query("SELECT count(*)::int AS n FROM pg_locks WHERE locktype = 'advisory' AND classid = $1", [0x6367]);
  return r.rows[0].n;
}

describe('through PgBouncer with its default pool mode (session)', () => {
  let t: TestDatabase;
  let bouncer: PgBouncer;
  beforeAll(async () => {
    t = await createTestDatabase();
    await seedDamage(t.pool);
    bouncer = await startPgBouncer(adminUrl(), 'session');
  });
  afterAll(async () => {
    await bouncer?.stop();
    await t?.drop();
  });

  it('every command works: scan, recover, runs, fk status, migrate', async () => {
    const url = bouncer.urlFor(t.name);
    const cli = (...args: string[]) => runCli([...args, '--database-url', url]);
    const scan = await cli('scan', '--format', 'json');
    expect(scan.stderr).not.toMatch(/unsupported startup parameter|internal error/);
    expect(scan.code).toBe(1);
    const recover = await cli('recover', '--yes', '--quarantine');
    expect(recover.stderr).not.toMatch(/internal error/);
    expect(recover.code).toBe(0);
    expect((await cli('scan')).code).toBe(0);
    expect((await cli('runs')).code).toBe(0);
    expect((await cli('fk', 'status')).code).toBe(0);
    expect((await cli('migrate')).code).toBe(0);
    expect(await caseguardLocks(t)).toBe(0);
  });
});

describe('through PgBouncer with pool_mode=transaction', () => {
  let t: TestDatabase;
  let bouncer: PgBouncer;
  beforeAll(async () => {
    t = await createTestDatabase();
    await seedDamage(t.pool);
    bouncer = await startPgBouncer(adminUrl(), 'transaction');
  });
  afterAll(async () => {
    await bouncer?.stop();
    await t?.drop();
  });

  it('scan, simulate, runs and dry runs work; what needs the session lock refuses with exit 2 and changes nothing', async () => {
    const url = bouncer.urlFor(t.name);
    const cli = (...args: string[]) => runCli([...args, '--database-url', url]);
    const before = await tableChecksum(t.pool, 'mega_agent.cases');
    const progress = await tableChecksum(t.pool, 'mega_agent.case_intake_progress');

    const scan = await cli('scan', '--format', 'json');
    expect(scan.code).toBe(1);
    expect(JSON.parse(scan.stdout).summary.errors).toBeGreaterThan(0);
    const dry = await cli('recover', '--dry-run');
    expect(dry.code).toBe(0);
    expect(dry.stdout).toMatch(/Recovery plan/);
    expect((await cli('runs')).code).toBe(0);
    expect((await cli('fk', 'plan')).code).toBe(0);

    for (const args of [
      ['recover', '--yes'],
      ['recover', '--undo', '1', '--yes'],
      ['quarantine', 'restore', '1', '--yes'],
      ['fk', 'add', '--yes'],
      ['fk', 'drop', '--yes'],
      ['migrate'],
    ]) {
      const r = await cli(...args);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stderr, args.join(' ')).toMatch(/transaction pooler.*use a direct or session-pooled URL|there is no run 1/);
      expect(r.stderr).not.toMatch(/\n\s+at /);
    }
    expect(await tableChecksum(t.pool, 'mega_agent.cases')).toBe(before);
    expect(await tableChecksum(t.pool, 'mega_agent.case_intake_progress')).toBe(progress);
    const journal = await t.pool.query('SELECT count(*)::int AS n FROM caseguard.runs');
    expect(journal.rows[0].n).toBe(0);

    const simulate = await cli('simulate', '--users', '6', '--concurrency', '3', '--format', 'json');
    expect(simulate.stderr).not.toMatch(/internal error/);
    expect(simulate.code).toBe(0);
    const report = JSON.parse(simulate.stdout);
    expect(report.outcomes.failed).toBe(0);
    expect(report.cases).toBe(6);

    // Nothing of caseguard's stays behind on the pooled server connections.
    expect(await caseguardLocks(t)).toBe(0);
    const sessions = await serverSessions(url, 5);
    for (const s of sessions) {
      expect(s.advisory).toBe(0);
      expect(s.lock_timeout).toBe('0');
      expect(s.statement_timeout).toBe('0');
      expect([null, '0']).toContain(s.check_interval);
    }
  });
});
