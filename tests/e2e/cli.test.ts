/** The built binary: help, exit codes, stdout for results and stderr for everything else. */
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { runCli, signalWhen } from '../helpers/cli.js';

describe('caseguard binary', () => {
  let t: TestDatabase;
  let empty: TestDatabase;
  beforeAll(async () => {
    [t, empty] = await Promise.all([createTestDatabase(), createTestDatabase({ empty: true })]);
  });
  afterAll(async () => {
    await Promise.all([t?.drop(), empty?.drop()]);
  });

  it('--help lists the commands and examples on stdout, exit 0', async () => {
    const r = await runCli(['--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/Usage: caseguard/);
    for (const command of ['migrate', 'simulate', 'scan', 'recover', 'fk', 'bot']) expect(r.stdout).toContain(command);
    expect(r.stdout).toMatch(/Exit codes:/);
    expect(r.stderr).toBe('');
  });

  it.each(['migrate', 'simulate'])('%s --help has examples', async (command) => {
    const r = await runCli([command, '--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/Examples:\n {2}\$ caseguard/);
  });

  it('--version prints the version', async () => {
    const r = await runCli(['--version']);
    expect(r.code).toBe(0);
    expect(r.stdout.trim()).toMatch(/^\d+\.\d+\.\d+/);
  });

  it('an unknown option or a bad value is a usage error, exit 2', async () => {
    expect((await runCli(['simulate', '--no-such-flag'])).code).toBe(2);
    const bad = await runCli(['simulate', '--users', 'many']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/expected a whole number/);
    expect((await runCli(['no-such-command'])).code).toBe(2);
    const noCommand = await runCli([]);
    expect(noCommand.code).toBe(2);
    expect(noCommand.stderr).toMatch(/Usage: caseguard/);
    const badRun = await runCli(['runs', 'show', 'abc']);
    expect(badRun.code).toBe(2);
    expect(badRun.stderr).toMatch(/expected a whole number/);
  });

  it('a database that refuses the connection: exit 3, one line, password redacted', async () => {
    const r = await runCli(['simulate', '--users', '1', '--database-url', 'postgres://admin:hunter2@127.0.0.1:1/intake']);
    expect(r.code).toBe(3);
    expect(r.stderr).toContain('postgres://admin@127.0.0.1:1/intake');
    expect(r.stderr).not.toContain('hunter2');
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stdout).toBe('');
  });

  it('a database without the schema: exit 4 naming what is missing and what to run', async () => {
    const r = await runCli(['simulate', '--users', '1', '--database-url', empty.url]);
    expect(r.code).toBe(4);
    expect(r.stderr).toMatch(/missing: table mega_agent.cases/);
    expect(r.stderr).toMatch(/caseguard migrate/);
  });

  it('CI=true with no database given refuses to fall back to the embedded one: exit 2', async () => {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'caseguard-ci-'));
    const r = await runCli(['simulate', '--users', '1'], { env: { CI: 'true' }, cwd: dir });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--embedded/);
    await expect(fs.access(path.join(dir, '.caseguard'))).rejects.toThrow();
    await fs.rm(dir, { recursive: true, force: true });
  });

  it('simulate: results on stdout, the database named on stderr, exit 0', async () => {
    const r = await runCli(['simulate', '--users', '12', '--concurrency', '4', '--database-url', t.url, '--format', 'json']);
    expect(r.code).toBe(0);
    const report = JSON.parse(r.stdout);
    expect(report.users).toBe(12);
    expect(report.orphans.total).toBe(0);
    expect(report.errors).toBe(0);
    expect(report.cases).toBe(12);
    const stderrLines = r.stderr
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(stderrLines.find((l) => l.event === 'db.target').database).toContain(t.name);
  });

  it('simulate --check fails only on orphans the legacy path did not create', async () => {
    const r = await runCli([
      'simulate',
      '--users',
      '40',
      '--legacy-rate',
      '0.3',
      '--crash-rate',
      '0.2',
      '--check',
      '--database-url',
      t.url,
      '--format',
      'json',
    ]);
    expect(r.code).toBe(0);
    const report = JSON.parse(r.stdout);
    expect(report.orphans.total).toBeGreaterThan(0);
    expect(report.orphans.unexplained).toBe(0);
    expect(report.orphans.legacy + report.orphans.crash).toBe(report.orphans.total);
  });

  it('the same seed gives the same outcome counts', async () => {
    const run = async () =>
      JSON.parse((await runCli(['simulate', '--users', '30', '--seed', '7', '--database-url', t.url, '--format', 'json'])).stdout);
    const [a, b] = [await run(), await run()];
    expect(a.outcomes).toEqual(b.outcomes);
    expect(a.reprompts).toBe(b.reprompts);
  });

  it('migrate is idempotent on a migrated database', async () => {
    const r = await runCli(['migrate', '--database-url', t.url]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/up to date/);
  });
});

describe('caseguard simulate, interrupted', () => {
  it('SIGINT stops starting users, reports the ones run, and exits 130', async () => {
    const t = await createTestDatabase();
    try {
      // Signalled once users are running (a case was created), never after a fixed sleep.
      const { code, stderr, signalled, stdout } = await signalWhen(
        ['simulate', '--users', '100000', '--concurrency', '2', '--format', 'json', '--log-level', 'info', '--database-url', t.url],
        (err) => err.includes('intake.case_created'),
        'SIGINT',
      );
      expect(signalled).toBe(true);
      expect(code).toBe(130);
      const report = JSON.parse(stdout);
      expect(report.users).toBeGreaterThan(0);
      expect(report.users).toBeLessThan(100000);
      expect(report.cases).toBeGreaterThan(0);
      expect(stderr).toMatch(/simulate interrupted after \d+ user/);
    } finally {
      await t.drop();
    }
  });
});

describe('small edges', () => {
  let t: TestDatabase;
  beforeAll(async () => {
    t = await createTestDatabase();
  });
  afterAll(() => t?.drop());

  it('simulate summarises the guard warnings the user asked for (--legacy-rate) in one line', async () => {
    const r = await runCli([
      'simulate',
      '--users',
      '60',
      '--legacy-rate',
      '0.5',
      '--seed',
      '7',
      '--format',
      'json',
      '--database-url',
      t.url,
    ]);
    expect(r.code).toBe(0);
    const recoveries = JSON.parse(r.stdout).recoveries as number;
    expect(recoveries).toBeGreaterThan(0);
    expect(r.stderr).not.toMatch(/ensure_case_exists\.case_missing"/);
    const summaries = r.stderr.split('\n').filter((l) => l.includes('simulate.guard_summary'));
    expect(summaries).toHaveLength(1);
    expect(summaries[0]).toContain(`${recoveries} legacy user(s) rescued by the guard`);
  });

  it('recover --undo of a run that does not exist says so, even without a terminal', async () => {
    const r = await runCli(['recover', '--undo', '999999', '--database-url', t.url]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/there is no run 999999/);
    expect(r.stderr).not.toMatch(/--yes/);
  });

  it('fk status on a table never analysed says the row estimate is unknown, not 0', async () => {
    const fresh = await createTestDatabase();
    try {
      // autovacuum must not analyse it behind the test's back
      await fresh.pool.query('ALTER TABLE mega_agent.case_intake_progress SET (autovacuum_enabled = false)');
      await fresh.pool.query(
        "INSERT INTO mega_agent.case_intake_progress (user_id, case_id) SELECT 'u' || g, gen_random_uuid()::text FROM generate_series(1, 1007) g",
      );
      const r = await runCli(['fk', 'status', '--format', 'json', '--database-url', fresh.url]);
      expect(r.code).toBe(0);
      expect(JSON.parse(r.stdout).references[0].state.rows).toBeNull();
      const table = await runCli(['fk', 'status', '--database-url', fresh.url]);
      expect(table.stdout).toMatch(/unknown: never analysed/);
      await fresh.pool.query('ANALYZE mega_agent.case_intake_progress');
      expect(
        JSON.parse((await runCli(['fk', 'status', '--format', 'json', '--database-url', fresh.url])).stdout).references[0].state.rows,
      ).toBe(1007);
    } finally {
      await fresh.drop();
    }
  });
});

describe('help', () => {
  const commands = [
    ['migrate'],
    ['scan'],
    ['recover'],
    ['runs'],
    ['runs', 'show'],
    ['quarantine'],
    ['quarantine', 'list'],
    ['quarantine', 'restore'],
    ['fk'],
    ['fk', 'status'],
    ['fk', 'plan'],
    ['fk', 'add'],
    ['fk', 'drop'],
    ['simulate'],
    ['bot'],
  ];

  it.each(commands)('%s %s --help shows the global options and examples after a blank line', async (...words) => {
    const r = await runCli([...words.filter(Boolean), '--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('--database-url');
    expect(r.stdout).toContain('--lock-wait');
    expect(r.stdout).toMatch(/\n\nExamples:\n {2}\$ caseguard /);
  });

  it.each([['runs'], ['fk'], ['quarantine']])('caseguard %s help works like --help', async (group) => {
    const r = await runCli([group, 'help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(new RegExp(`^Usage: caseguard ${group} `));
  });
});
