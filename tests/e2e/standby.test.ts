/**
 * A real hot standby (pg_basebackup -R from a primary of the machine's PostgreSQL): scan and the
 * dry run work on it; everything that writes refuses with exit 2 in one line, naming the
 * standby and the primary, before changing anything.
 */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli.js';
import { seedDamage } from '../helpers/fixtures.js';
import { startPrimaryAndStandby, type TestServer } from '../helpers/server.js';

const app = (url: string) => url.replace(/\/postgres$/, '/app');

describe('a hot standby', () => {
  let primary: TestServer;
  let standby: TestServer;
  beforeAll(async () => {
    ({ primary, standby } = await startPrimaryAndStandby(async (url) => {
      const admin = new pg.Client({ connectionString: url });
      await admin.connect();
      await admin.query('CREATE DATABASE app');
      await admin.end();
      const migrated = await runCli(['migrate', '--database-url', app(url)]);
      if (migrated.code !== 0) throw new Error(`migrate on the primary failed: ${migrated.stderr}`);
      const pool = new pg.Pool({ connectionString: app(url) });
      await seedDamage(pool);
      await pool.end();
    }));
  });
  afterAll(async () => {
    await standby?.stop();
    await primary?.stop();
  });
  const cli = (...args: string[]) => runCli([...args, '--database-url', app(standby.url)]);

  it('is a standby', async () => {
    const client = new pg.Client({ connectionString: app(standby.url) });
    await client.connect();
    expect((await client.query('SELECT pg_is_in_recovery() AS r')).rows[0].r).toBe(true);
    await client.end();
  });

  it('scan, runs, fk status and recover --dry-run work', async () => {
    const scan = await cli('scan', '--format', 'json');
    expect(scan.code).toBe(1);
    expect(JSON.parse(scan.stdout).summary.errors).toBeGreaterThan(0);
    expect((await cli('runs')).code).toBe(0);
    expect((await cli('fk', 'status')).code).toBe(0);
    const dry = await cli('recover', '--dry-run');
    expect(dry.stderr).not.toMatch(/internal error/);
    expect(dry.code).toBe(0);
    expect(dry.stdout).toMatch(/Recovery plan/);
  });

  it.each([
    [['recover', '--yes']],
    [['fk', 'add', '--yes']],
    [['migrate']],
    [['quarantine', 'restore', '1', '--yes']],
    [['simulate', '--users', '1']],
  ])('%s refuses with exit 2: a hot standby, use the primary', async (args) => {
    const r = await cli(...args);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/is a hot standby \(read-only\): caseguard \S+.* writes; run it against the primary/);
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });
});
