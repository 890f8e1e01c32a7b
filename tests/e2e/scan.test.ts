/** scan through the built binary: every format parsed back, exit codes and thresholds. */
import { XMLParser, XMLValidator } from 'fast-xml-parser';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli.js';
import { parseCsv } from '../helpers/csv.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { expected, HOSTILE_USER, seedControls, seedDamage } from '../helpers/fixtures.js';

const CHECK_IDS = [
  'orphaned_progress',
  'invalid_case_id',
  'noncanonical_case_id',
  'duplicate_progress',
  'orphaned_memory',
  'dangling_active_case',
  'owner_mismatch',
];

describe('caseguard scan', () => {
  let damaged: TestDatabase;
  let clean: TestDatabase;
  const scan = (t: TestDatabase, ...args: string[]) => runCli(['scan', '--database-url', t.url, ...args]);

  beforeAll(async () => {
    [damaged, clean] = await Promise.all([createTestDatabase(), createTestDatabase()]);
    await Promise.all([seedDamage(damaged.pool), seedControls(clean.pool)]);
  });
  afterAll(async () => {
    await Promise.all([damaged?.drop(), clean?.drop()]);
  });

  it('a clean database passes: exit 0', async () => {
    const r = await scan(clean);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/OK: 0 error finding/);
  });

  it('table (default): a summary row per check, samples, exit 1, no colour without a terminal', async () => {
    const r = await scan(damaged);
    expect(r.code).toBe(1);
    for (const id of CHECK_IDS) expect(r.stdout).toContain(id);
    expect(r.stdout).toMatch(/FAILED/);
    // eslint-disable-next-line no-control-regex -- an ANSI escape is what must not be there
    expect(r.stdout).not.toMatch(/\u001b\[/);
    // control characters in a hostile user id are shown escaped, not emitted raw
    expect(r.stdout).toContain('o\'neil\\t"robert');
  });

  it('json follows the documented contract', async () => {
    const r = await scan(damaged, '--format', 'json');
    expect(r.code).toBe(1);
    const report = JSON.parse(r.stdout);
    expect(Object.keys(report)).toEqual(expect.arrayContaining(['database', 'schema', 'startedAt', 'durationMs', 'checks', 'summary']));
    expect(report.database).toContain(damaged.name);
    expect(report.schema).toBe('mega_agent');
    expect(Number.isNaN(Date.parse(report.startedAt))).toBe(false);
    expect(report.checks.map((c: { id: string }) => c.id)).toEqual(CHECK_IDS);
    for (const c of report.checks) {
      expect(['error', 'warn']).toContain(c.severity);
      expect(['pass', 'fail', 'skipped']).toContain(c.status);
      expect(typeof c.count).toBe('number');
      expect(Array.isArray(c.samples)).toBe(true);
      expect(c.count).toBe(expected[c.id as keyof typeof expected]);
    }
    expect(report.checks.find((c: { id: string }) => c.id === 'orphaned_progress').distinctCases).toBe(3);
    expect(report.summary).toMatchObject({ missingCases: expected.missingCases, exitCode: 1 });
    expect(report.checks.flatMap((c: { samples: { user_id: string }[] }) => c.samples.map((s) => s.user_id))).toContain(HOSTILE_USER);
  });

  it('csv: one row per finding, hostile ids intact', async () => {
    const r = await scan(damaged, '--format', 'csv');
    const rows = parseCsv(r.stdout);
    expect(rows[0]).toEqual(['check', 'severity', 'table', 'user_id', 'case_id', 'canonical_id', 'owner', 'memory_id', 'detail']);
    const total = Object.entries(expected)
      .filter(([k]) => k !== 'missingCases')
      .reduce((n, [, v]) => n + v, 0);
    expect(rows).toHaveLength(1 + total);
    expect(rows.filter((row) => row[3] === HOSTILE_USER)).toHaveLength(1);
    expect(new Set(rows.slice(1).map((row) => row.length))).toEqual(new Set([9]));
  });

  it('junit: valid XML, a testcase per check, failures carry counts and samples', async () => {
    const r = await scan(damaged, '--format', 'junit');
    expect(XMLValidator.validate(r.stdout)).toBe(true);
    const doc = new XMLParser({ ignoreAttributes: false, attributeNamePrefix: '' }).parse(r.stdout);
    const cases = doc.testsuites.testsuite.testcase as Array<{ name: string; failure?: { message: string; '#text': string } }>;
    expect(cases.map((c) => c.name)).toEqual(CHECK_IDS);
    const orphan = cases.find((c) => c.name === 'orphaned_progress')!;
    expect(orphan.failure?.message).toMatch(/^3 finding\(s\), 3 distinct case id\(s\)/);
    expect(orphan.failure?.['#text']).toContain('zoë 🚀');
    // Only what counts toward the exit code fails: the 5 error checks; the 2 warnings pass with their findings in system-out.
    expect(Number(doc.testsuites.failures)).toBe(5);
    const warning = cases.find((c) => c.name === 'noncanonical_case_id') as { failure?: unknown; 'system-out'?: string };
    expect(warning.failure).toBeUndefined();
    expect(warning['system-out']).toMatch(/finding\(s\) \(warn\)/);
  });

  it('junit agrees with the gate: warnings only pass (0 failures, exit 0); --fail-on warn fails them; tolerated findings pass', async () => {
    const parse = (xmlText: string) => new XMLParser({ ignoreAttributes: false, attributeNamePrefix: '' }).parse(xmlText).testsuites;
    // A database whose only findings are warnings: the spellings of existing cases.
    const warnOnly = await createTestDatabase();
    try {
      await warnOnly.pool.query(
        "INSERT INTO mega_agent.cases (case_id, user_id, title) VALUES ('abcdef00-0000-4000-a000-000000000001', 'w', 't')",
      );
      await warnOnly.pool.query(
        "INSERT INTO mega_agent.case_intake_progress (user_id, case_id) VALUES ('w', 'ABCDEF00-0000-4000-A000-000000000001')",
      );
      const passing = await runCli(['scan', '--format', 'junit', '--database-url', warnOnly.url]);
      expect(passing.code).toBe(0);
      expect(Number(parse(passing.stdout).failures)).toBe(0);
      const strict = await runCli(['scan', '--format', 'junit', '--fail-on', 'warn', '--database-url', warnOnly.url]);
      expect(strict.code).toBe(1);
      expect(Number(parse(strict.stdout).failures)).toBe(1);
    } finally {
      await warnOnly.drop();
    }
    const tolerated = await scan(damaged, '--format', 'junit', '--max-findings', '1000');
    expect(tolerated.code).toBe(0);
    expect(Number(parse(tolerated.stdout).failures)).toBe(0);
  });

  it('csv writes every finding (streamed): as many rows as json --all counts', async () => {
    const csv = await scan(damaged, '--format', 'csv', '--limit', '1');
    const json = JSON.parse((await scan(damaged, '--format', 'json', '--limit', '1')).stdout) as {
      checks: Array<{ count: number; omitted: number; samples: unknown[] }>;
    };
    const total = json.checks.reduce((n, c) => n + c.count, 0);
    expect(parseCsv(csv.stdout).length - 1).toBe(total);
    for (const c of json.checks) expect(c.omitted).toBe(c.count - c.samples.length);
    expect(json.checks.some((c) => c.omitted > 0)).toBe(true);
  });

  it('prometheus: gauges per check and the duration', async () => {
    const r = await scan(damaged, '--format', 'prometheus');
    const lines = r.stdout.trim().split('\n');
    for (const line of lines) expect(line).toMatch(/^(# (HELP|TYPE) \w+ .+|\w+(\{[^}]*\})? [0-9.e+-]+)$/);
    expect(lines).toContain(`caseguard_findings{check="orphaned_progress",severity="error"} ${expected.orphaned_progress}`);
    expect(lines).toContain(`caseguard_missing_cases ${expected.missingCases}`);
    expect(lines.some((l) => /^caseguard_scan_duration_seconds \d+\.\d{3}$/.test(l))).toBe(true);
  });

  it('--output writes the report atomically; a folder that does not exist is a clear error', async () => {
    const fs = await import('node:fs/promises');
    const os = await import('node:os');
    const path = await import('node:path');
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'caseguard-out-'));
    try {
      const file = path.join(dir, 'caseguard.prom');
      const r = await scan(damaged, '--format', 'prometheus', '--output', file);
      expect(r.code).toBe(1);
      expect(r.stdout).toBe('');
      expect(await fs.readFile(file, 'utf8')).toContain(
        `caseguard_findings{check="orphaned_progress",severity="error"} ${expected.orphaned_progress}`,
      );
      const all = path.join(dir, 'all.json');
      expect((await scan(damaged, '--all', '--format', 'json', '-o', all)).code).toBe(1);
      expect(JSON.parse(await fs.readFile(all, 'utf8')).checks).toHaveLength(7);
      expect((await fs.readdir(dir)).sort()).toEqual(['all.json', 'caseguard.prom']);
      const missing = await scan(damaged, '--output', path.join(dir, 'no', 'such', 'dir', 'x.txt'));
      expect(missing.code).toBe(2);
      expect(missing.stderr).toMatch(/cannot write/);
    } finally {
      await fs.rm(dir, { recursive: true, force: true });
    }
  });

  it('--fail-on and --max-findings set the threshold', async () => {
    const errors =
      expected.orphaned_progress +
      expected.invalid_case_id +
      expected.duplicate_progress +
      expected.orphaned_memory +
      expected.dangling_active_case;
    expect((await scan(damaged, '--max-findings', String(errors))).code).toBe(0);
    expect((await scan(damaged, '--max-findings', String(errors), '--fail-on', 'warn')).code).toBe(1);
    expect((await scan(damaged, '--fail-on', 'fatal')).code).toBe(2);
  });

  it('--all streams every finding as JSON and CSV', async () => {
    const json = JSON.parse((await scan(damaged, '--all', '--format', 'json', '--limit', '1')).stdout);
    for (const c of json.checks) expect(c.samples).toHaveLength(c.count);
    const csv = parseCsv((await scan(damaged, '--all', '--format', 'csv')).stdout);
    expect(csv.length - 1).toBe(json.checks.reduce((n: number, c: { count: number }) => n + c.count, 0));
    const refused = await scan(damaged, '--all');
    expect(refused.code).toBe(2);
  });

  it('a scan that cannot finish within --statement-timeout exits 5 with a clear line', async () => {
    const holder = await damaged.pool.connect();
    try {
      await holder.query('BEGIN');
      await holder.query('LOCK TABLE mega_agent.case_intake_progress IN ACCESS EXCLUSIVE MODE');
      const r = await scan(damaged, '--statement-timeout', '300ms');
      expect(r.code).toBe(5);
      expect(r.stderr).toMatch(/did not finish within --statement-timeout 300ms/);
    } finally {
      await holder.query('ROLLBACK');
      holder.release();
    }
  });

  it('SIGINT ends a blocked scan at once with 130', async () => {
    const { spawn } = await import('node:child_process');
    const { BIN } = await import('../helpers/cli.js');
    const holder = await damaged.pool.connect();
    try {
      await holder.query('BEGIN');
      await holder.query('LOCK TABLE mega_agent.case_intake_progress IN ACCESS EXCLUSIVE MODE');
      const child = spawn(process.execPath, [BIN, 'scan', '--database-url', damaged.url], {
        env: { ...process.env, CI: '' },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stderr = '';
      child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
      // Ready when the scan's query waits on the lock: the server says so, no fixed sleep.
      for (let i = 0; i < 400; i++) {
        const waiting = await damaged.pool.query(
          "SELECT 1 FROM pg_stat_activity WHERE datname = current_database() AND application_name LIKE 'caseguard scan %' AND wait_event_type = 'Lock'",
        );
        if (waiting.rows.length > 0) break;
        await new Promise((r) => setTimeout(r, 25));
      }
      const t0 = Date.now();
      child.kill('SIGINT');
      const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
      expect(code).toBe(130);
      expect(Date.now() - t0).toBeLessThan(3000);
      expect(stderr).toMatch(/interrupted/);
    } finally {
      await holder.query('ROLLBACK');
      holder.release();
    }
  });

  it('a bad --since is a usage error: unparsable, or in the future', async () => {
    const r = await scan(damaged, '--since', 'yesterday-ish');
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/timestamp/);
    const future = await scan(damaged, '--since', new Date(Date.now() + 3_600_000).toISOString());
    expect(future.code).toBe(2);
    expect(future.stderr).toMatch(/is in the future/);
  });

  it('--since without deletion tracking says so in every format and fails the gate unless --accept-partial; migrate --track-deletions covers it', async () => {
    const since = new Date(Date.now() - 1000).toISOString();
    const json = await scan(clean, '--since', since, '--format', 'json');
    expect(json.code).toBe(1);
    expect(JSON.parse(json.stdout)).toMatchObject({ coverage: 'changed-rows-only', summary: { gate: 'failed', errors: 0 } });
    expect(json.stderr).toMatch(/coverage changed-rows-only: a case deleted since .* is not seen/);
    const table = await scan(clean, '--since', since);
    expect(table.stdout).toMatch(/coverage: changed rows only since/);
    const junit = await scan(clean, '--since', since, '--format', 'junit');
    expect(junit.stdout).toContain('<property name="coverage" value="changed-rows-only"/>');
    expect(junit.stdout).toMatch(/<testcase classname="caseguard.scan" name="coverage"[^]*<failure/);
    const prometheus = await scan(clean, '--since', since, '--format', 'prometheus');
    expect(prometheus.stdout).toContain('caseguard_scan_coverage_complete 0');
    const accepted = await scan(clean, '--since', since, '--accept-partial', '--format', 'json');
    expect(accepted.code).toBe(0);
    expect(JSON.parse(accepted.stdout).coverage).toBe('changed-rows-only');
    const tracked = await runCli(['migrate', '--track-deletions', '--database-url', clean.url]);
    expect(tracked.code, tracked.stderr).toBe(0);
    expect(tracked.stdout).toMatch(/Deletions of cases are tracked from /);
    const from = (await clean.pool.query("SELECT installed_at + interval '1 millisecond' AS installed_at FROM caseguard.deletion_tracking"))
      .rows[0].installed_at as Date;
    const complete = await scan(clean, '--since', from.toISOString(), '--format', 'json');
    expect(complete.code).toBe(0);
    expect(JSON.parse(complete.stdout).coverage).toBe('complete');
    const untracked = await runCli(['migrate', '--untrack-deletions', '--database-url', clean.url]);
    expect(untracked.stdout).toMatch(/Deletion tracking removed/);
  });
});
