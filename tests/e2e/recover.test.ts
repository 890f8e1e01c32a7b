/** recover through the built binary: refusal, confirmation flags, lock contention, SIGINT. */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { runCli, signalWhen } from '../helpers/cli.js';
import { createTestDatabase, tableChecksum, type TestDatabase } from '../helpers/db.js';
import { seedDamage } from '../helpers/fixtures.js';
import { recoveredCaseCount, seedOrphans } from '../helpers/orphans.js';

describe('caseguard recover', () => {
  let t: TestDatabase;
  beforeEach(async () => {
    t = await createTestDatabase();
    await seedDamage(t.pool);
  });
  afterEach(() => t?.drop());
  const cli = (...args: string[]) => runCli([...args, '--database-url', t.url]);

  it('refuses without a terminal unless --yes: exit 2, nothing written, nothing journaled', async () => {
    const before = await tableChecksum(t.pool, 'mega_agent.cases');
    const r = await cli('recover');
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/no terminal.*--yes/);
    expect(await tableChecksum(t.pool, 'mega_agent.cases')).toBe(before);
    const runs = await t.pool
      .query("SELECT count(*)::int AS n FROM caseguard.runs WHERE command = 'recover'")
      .catch(() => ({ rows: [{ n: 0 }] }));
    expect(runs.rows[0].n).toBe(0);
  });

  it('--dry-run prints the plan with its SQL; --yes applies it; the rerun has nothing to do', async () => {
    const dry = await cli('recover', '--dry-run', '--quarantine');
    expect(dry.code).toBe(0);
    expect(dry.stdout).toMatch(/Recovery plan/);
    expect(dry.stdout).toMatch(/INSERT INTO mega_agent\.cases/);
    expect(dry.stdout).toMatch(/Dry run: nothing was changed/);
    const real = await cli('recover', '--yes', '--quarantine');
    expect(real.code).toBe(0);
    expect(real.stdout).toMatch(/Recovered: run \d+/);
    expect(real.stderr).toMatch(/recover\.batch_committed/);
    const again = await cli('recover', '--yes', '--quarantine');
    expect(again.stdout).toMatch(/Nothing to do/);
    const scan = await cli('scan');
    expect(scan.code).toBe(0);
    const runs = await cli('runs', '--format', 'json');
    // the dry run journals nothing: the real run and the rerun
    expect(JSON.parse(runs.stdout).map((r: { status: string }) => r.status)).toEqual(['completed', 'completed']);
    const q = await cli('quarantine', 'list', '--format', 'json');
    expect(JSON.parse(q.stdout).total).toBe(7); // 4 invalid, 1 of the duplicate pair (the latest kept), memory, pointer
  });

  it('a read-only role cannot recover: exit 3, one line naming the missing privilege', async () => {
    const role = `cg_ro_${Date.now().toString(36)}`;
    await t.pool.query(`CREATE ROLE ${role} LOGIN PASSWORD 'ro-pass'; GRANT CONNECT ON DATABASE ${t.name} TO ${role};
      GRANT USAGE ON SCHEMA mega_agent TO ${role}; GRANT SELECT ON ALL TABLES IN SCHEMA mega_agent TO ${role}`);
    try {
      const url = new URL(t.url);
      url.username = role;
      url.password = 'ro-pass';
      const scan = await runCli(['scan', '--database-url', url.toString()]);
      expect(scan.code).toBe(1);
      const r = await runCli(['recover', '--yes', '--database-url', url.toString()]);
      expect(r.code).toBe(3);
      expect(r.stderr).toMatch(/lacks a privilege.*permission denied/);
      expect(r.stderr).not.toContain('ro-pass');
      expect(r.stderr).not.toMatch(/\n\s+at /);
    } finally {
      await t.pool.query(`REVOKE ALL ON ALL TABLES IN SCHEMA mega_agent FROM ${role}; REVOKE ALL ON SCHEMA mega_agent FROM ${role};
        REVOKE ALL ON DATABASE ${t.name} FROM ${role}; DROP ROLE ${role}`);
    }
  });

  it('a writer role without TEMPORARY on the database: exit 3 naming it, nothing written; granted, the same role recovers', async () => {
    const role = `cg_nt_${Date.now().toString(36)}`;
    expect((await cli('migrate')).code).toBe(0);
    await t.pool.query(`CREATE ROLE ${role} LOGIN PASSWORD 'nt-pass'; GRANT CONNECT ON DATABASE ${t.name} TO ${role};
      REVOKE TEMPORARY ON DATABASE ${t.name} FROM PUBLIC;
      GRANT USAGE ON SCHEMA mega_agent, caseguard TO ${role};
      GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA mega_agent, caseguard TO ${role};
      GRANT USAGE ON ALL SEQUENCES IN SCHEMA mega_agent, caseguard TO ${role}`);
    try {
      const url = new URL(t.url);
      url.username = role;
      url.password = 'nt-pass';
      const before = await tableChecksum(t.pool, 'mega_agent.cases');
      const refused = await runCli(['recover', '--yes', '--database-url', url.toString()]);
      expect(refused.code).toBe(3);
      expect(refused.stderr).toMatch(/lacks a privilege this command needs: TEMPORARY on database \w+ .*nothing was changed/);
      expect(refused.stderr).not.toMatch(/\n\s+at /);
      expect(await tableChecksum(t.pool, 'mega_agent.cases')).toBe(before);
      expect((await t.pool.query('SELECT count(*)::int AS n FROM caseguard.runs')).rows[0].n).toBe(0);
      await t.pool.query(`GRANT TEMPORARY ON DATABASE ${t.name} TO ${role}`);
      const granted = await runCli(['recover', '--yes', '--database-url', url.toString()]);
      expect(granted.code).toBe(0);
      expect((await recoveredCaseCount(t.pool)).cases).toBe(5);
    } finally {
      await t.pool
        .query(`REVOKE ALL ON ALL TABLES IN SCHEMA mega_agent, caseguard FROM ${role}; REVOKE ALL ON ALL SEQUENCES IN SCHEMA mega_agent, caseguard FROM ${role};
        REVOKE ALL ON SCHEMA mega_agent, caseguard FROM ${role}; REVOKE ALL ON DATABASE ${t.name} FROM ${role}; DROP ROLE ${role}`);
    }
  });

  it('waits --lock-wait for the run lock, then exits 5 naming the holder', async () => {
    const holder = await t.pool.connect();
    try {
      await holder.query('SELECT pg_advisory_lock($1, $2)', [0x6367, 2]);
      const r = await cli('recover', '--yes', '--lock-wait', '400ms');
      expect(r.code).toBe(5);
      expect(r.stderr).toMatch(/"event":"run_lock.waiting"/);
      expect(r.stderr).toMatch(/caseguard recover cannot start: caseguard-tests \(pid \d+, user \w+\) holds caseguard's run lock/);
    } finally {
      holder.release();
    }
  });

  it('SIGINT while waiting for the run lock: exit 130 at once, nothing changed, nothing journaled', async () => {
    const holder = await t.pool.connect();
    try {
      await holder.query('SELECT pg_advisory_lock($1, $2)', [0x6367, 2]);
      const { code, stderr, signalled } = await signalWhen(
        ['recover', '--yes', '--lock-wait', '10min', '--database-url', t.url],
        (err) => err.includes('run_lock.waiting'),
        'SIGINT',
      );
      expect(signalled).toBe(true);
      expect(code).toBe(130);
      expect(stderr).toMatch(/interrupted while waiting for the run lock; nothing was changed/);
      const runs = await t.pool.query('SELECT count(*)::int AS n FROM caseguard.runs');
      expect(runs.rows[0].n).toBe(0);
    } finally {
      holder.release();
    }
  });

  it('kill -9 mid-run, then a rerun: no bookkeeping left beyond the journal; the dead run is abandoned with its committed counts', async () => {
    await seedOrphans(t.pool, 3000);
    const killed = await signalWhen(
      ['recover', '--yes', '--batch-size', '10', '--database-url', t.url],
      (err) => (err.match(/recover\.batch_committed/g) ?? []).length >= 3,
      'SIGKILL',
    );
    expect(killed.signalled).toBe(true);
    // The server ends the dead process's sessions as it notices their closed sockets.
    for (let i = 0; i < 200; i++) {
      const left = await t.pool.query(
        "SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND application_name LIKE 'caseguard recover %'",
      );
      if (left.rows[0].n === 0) break;
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
    const listed = await cli('runs', '--format', 'json');
    expect(JSON.parse(listed.stdout)[0].status).toBe('abandoned');
    const committed = (await t.pool.query("SELECT sum(row_count)::int AS n FROM caseguard.run_items WHERE action = 'case_created'")).rows[0]
      .n;
    expect(committed).toBeGreaterThanOrEqual(30);
    // The run's targets were a temporary table of its session: gone with it, before any rerun.
    const targetsLeft = "SELECT count(*)::int AS n FROM pg_class WHERE relname = 'caseguard_targets'";
    expect((await t.pool.query(targetsLeft)).rows[0].n).toBe(0);
    const rerun = await cli('recover', '--yes');
    expect(rerun.code).toBe(0);
    expect((await t.pool.query(targetsLeft)).rows[0].n).toBe(0);
    const dead = await t.pool.query('SELECT status, counts FROM caseguard.runs ORDER BY run_id LIMIT 1');
    expect(dead.rows[0]).toMatchObject({ status: 'abandoned', counts: { case_created: committed } });
    expect((await recoveredCaseCount(t.pool)).cases).toBe(3000 + 5);
  });

  it('SIGINT mid-run: the batch completes, the run is journaled as interrupted, exit 130; a rerun finishes', async () => {
    await seedOrphans(t.pool, 3000);
    const { code, stderr, signalled } = await signalWhen(
      ['recover', '--yes', '--batch-size', '10', '--database-url', t.url],
      (err) => err.includes('recover.batch_committed'),
      'SIGINT',
    );
    expect(signalled).toBe(true);
    expect(code).toBe(130);
    expect(stderr).toMatch(/interrupted/);
    const run = await t.pool.query("SELECT status FROM caseguard.runs WHERE command = 'recover' ORDER BY run_id DESC LIMIT 1");
    expect(run.rows[0].status).toBe('interrupted');
    const partial = await recoveredCaseCount(t.pool);
    expect(partial.cases).toBeLessThan(3005);
    const rerun = await cli('recover', '--yes');
    expect(rerun.code).toBe(0);
    expect(await recoveredCaseCount(t.pool)).toEqual({ cases: 3005, distinct: 3005 });
  });
});
