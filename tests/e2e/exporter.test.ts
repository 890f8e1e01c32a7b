/**
 * caseguard exporter on a real PostgreSQL: /metrics is the Prometheus text format (checked by
 * promtool, Debian package prometheus) with the numbers of scan and of the fixture; the database
 * going away sets caseguard_up 0 and keeps the server answering; SIGTERM ends it with 0; a real
 * Prometheus (same package) scrapes it and answers queries over what it stored.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { get, startExporterProcess, type RunningExporter } from '../helpers/exporter.js';
import { expected, id, seedDamage } from '../helpers/fixtures.js';
import { FUNNEL, parseMetrics, sample, seedFunnel } from '../helpers/monitor.js';
import { freePort, startServerFrom, systemBinDir } from '../helpers/server.js';

const window = ['--days', String(FUNNEL.days), '--abandoned-after', '24h', '--log-level', 'info'];

function promtoolCheck(text: string): { status: number | null; output: string } {
  const r = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
  if (r.error) throw new Error(`promtool is needed (Debian package prometheus; .ci/run installs it): ${r.error.message}`);
  return { status: r.status, output: `${r.stdout}${r.stderr}` };
}

describe('caseguard exporter', () => {
  let t: TestDatabase;
  let exporter: RunningExporter;
  let damageProgress: number;
  beforeAll(async () => {
    t = await createTestDatabase();
    await seedDamage(t.pool);
    damageProgress = Number((await t.pool.query('SELECT count(*) FROM mega_agent.case_intake_progress')).rows[0].count);
    await seedFunnel(t.pool);
    await t.pool.query(`INSERT INTO caseguard.runs (command, dry_run, status, process) VALUES
      ('recover', false, 'completed', 'gone 1'), ('recover', false, 'failed', 'gone 2'), ('recover', false, 'running', 'caseguard recover 0dead')`);
    exporter = await startExporterProcess(['--database-url', t.url, '--interval', '1h', ...window]);
  });
  afterAll(async () => {
    if (exporter?.child.exitCode === null) await exporter.stop('SIGKILL');
    await t?.drop();
  });

  it('serves /metrics in the Prometheus text format with the numbers scan reports', async () => {
    const r = await get(`${exporter.url}/metrics`);
    expect(r.status).toBe(200);
    expect(r.type).toMatch(/^text\/plain; version=0\.0\.4/);
    const lint = promtoolCheck(r.body);
    expect(lint.output).toBe('');
    expect(lint.status).toBe(0);
    const samples = parseMetrics(r.body);
    const scan = await runCli(['scan', '--format', 'json', '--database-url', t.url, '--log-level', 'silent']);
    const report = JSON.parse(scan.stdout) as {
      checks: Array<{ id: keyof typeof expected; severity: string; count: number }>;
      summary: { missingCases: number };
    };
    for (const check of report.checks) {
      expect(sample(samples, 'caseguard_findings', { check: check.id, severity: check.severity })).toBe(check.count);
      expect(check.count).toBe(expected[check.id]);
    }
    expect(sample(samples, 'caseguard_missing_cases')).toBe(report.summary.missingCases);
    expect(sample(samples, 'caseguard_up', { error: '' })).toBe(1);
    expect(sample(samples, 'caseguard_last_refresh_timestamp_seconds')).toBeGreaterThan(Date.now() / 1000 - 3600);
    expect(sample(samples, 'caseguard_refresh_duration_seconds')).toBeGreaterThan(0);
  });

  it('serves the recoveries and the intake funnel of the fixture', async () => {
    const samples = parseMetrics((await get(`${exporter.url}/metrics`)).body);
    expect(sample(samples, 'caseguard_recovered_cases', { source: 'ensure_case' })).toBe(FUNNEL.recovered.ensure_case.total);
    expect(sample(samples, 'caseguard_recovered_cases', { source: 'recover' })).toBe(FUNNEL.recovered.recover.total);
    const today = new Date().toISOString().slice(0, 10);
    expect(sample(samples, 'caseguard_recovered_cases_by_day', { source: 'ensure_case', day: today })).toBe(
      FUNNEL.recovered.ensure_case.today,
    );
    expect(sample(samples, 'caseguard_recover_runs', { status: 'completed' })).toBe(1);
    expect(sample(samples, 'caseguard_recover_runs', { status: 'failed' })).toBe(1);
    expect(sample(samples, 'caseguard_recover_runs', { status: 'abandoned' })).toBe(1);
    // the damage fixture's progress rows started today, in progress
    const todayStarted = FUNNEL.byDay.at(-1)!.started + damageProgress;
    expect(sample(samples, 'caseguard_intakes', { stage: 'started', day: today })).toBe(todayStarted);
    expect(sample(samples, 'caseguard_intakes_window', { stage: 'abandoned' })).toBe(FUNNEL.totals.abandoned);
    expect(sample(samples, 'caseguard_intakes_window', { stage: 'completed' })).toBe(FUNNEL.totals.completed);
    expect(samples.filter((s) => s.name === 'caseguard_intakes' && s.labels.stage === 'started')).toHaveLength(FUNNEL.days);
    expect(sample(samples, 'caseguard_intake_completion_ratio')).toBeCloseTo(FUNNEL.ratio, 6);
    expect(sample(samples, 'caseguard_intake_completion_seconds', { percentile: '95' })).toBeCloseTo(FUNNEL.p95, 3);
    // funnel prints the same numbers
    const funnel = await runCli(['funnel', '--format', 'json', '--database-url', t.url, '--log-level', 'silent', '--days', '3']);
    expect(JSON.parse(funnel.stdout).totals.started).toBe(FUNNEL.totals.started + damageProgress);
  });

  it('keeps the values of its last refresh between refreshes (--interval)', async () => {
    await t.pool.query("INSERT INTO mega_agent.case_intake_progress (user_id, case_id) VALUES ('late-orphan', $1)", [id(999)]);
    const samples = parseMetrics((await get(`${exporter.url}/metrics`)).body);
    expect(sample(samples, 'caseguard_findings', { check: 'orphaned_progress', severity: 'error' })).toBe(expected.orphaned_progress);
    await t.pool.query("DELETE FROM mega_agent.case_intake_progress WHERE user_id = 'late-orphan'");
  });

  it('holds no connection between refreshes', async () => {
    await get(`${exporter.url}/metrics`);
    let held = -1;
    for (let i = 0; i < 100 && held !== 0; i++) {
      const r = await t.pool.query(
        "SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name LIKE 'caseguard exporter %' AND datname = current_database()",
      );
      held = r.rows[0].n;
      if (held !== 0) await sleep(50);
    }
    expect(held).toBe(0);
  });

  it('caseguard funnel prints the fixture as a table, one row per day and a total', async () => {
    const r = await runCli(['funnel', '--days', '3', '--database-url', t.url, '--log-level', 'warn']);
    expect(r.code).toBe(0);
    const total = r.stdout.split('\n').find((line) => line.includes('total'))!;
    const cells = total
      .split('│')
      .map((c) => c.trim())
      .filter(Boolean);
    const f = FUNNEL.totals;
    expect(cells).toEqual([
      'total',
      String(f.started + damageProgress),
      String(f.completed),
      String(f.cancelled),
      String(f.abandoned),
      String(f.inProgress + damageProgress),
      `${(100 * FUNNEL.ratio).toFixed(1)}%`,
    ]);
    expect(r.stdout).toMatch(/Completion ratio: 42\.9%\. Time to complete: p50 2m 0s, p95 54m 12s\./);
  });

  it('answers /healthz, 404 elsewhere, 405 for other methods', async () => {
    const health = await get(`${exporter.url}/healthz`);
    expect(health.status).toBe(200);
    expect(JSON.parse(health.body)).toMatchObject({ status: 'ok', error: null });
    expect((await get(`${exporter.url}/nope`)).status).toBe(404);
    expect((await get(`${exporter.url}/metrics`, { method: 'POST' })).status).toBe(405);
  });

  it('SIGTERM stops it cleanly with exit 0', async () => {
    expect(await exporter.stop('SIGTERM')).toBe(0);
    expect(exporter.stderr()).toContain('"event":"exporter.stopped"');
    expect(exporter.stderr()).not.toMatch(/internal error|Unhandled/);
  });

  it('refuses a taken address in one line, exit 2', async () => {
    const holder = await startExporterProcess(['--database-url', t.url, '--interval', '1h']);
    try {
      const r = await runCli(['exporter', '--listen', new URL(holder.url).host, '--database-url', t.url]);
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(/cannot listen on 127\.0\.0\.1:\d+: the address is in use; choose another with --listen/);
      expect(r.stderr).not.toMatch(/\n\s+at /);
    } finally {
      expect(await holder.stop()).toBe(0);
    }
  });
});

describe('caseguard exporter when the database goes away', () => {
  it('sets caseguard_up 0, keeps answering with the last values, and recovers when the server is back', async () => {
    const bin = systemBinDir();
    let server = await startServerFrom(bin);
    const port = Number(new URL(server.url).port);
    const migrate = await runCli(['migrate', '--database-url', server.url, '--log-level', 'warn']);
    expect(migrate.code).toBe(0);
    const pool = new pg.Pool({ connectionString: server.url, max: 1 });
    pool.on('error', () => undefined);
    await pool.query("INSERT INTO mega_agent.case_intake_progress (user_id, case_id) VALUES ('u1', $1)", [id(1)]);
    await pool.end();
    const exporter = await startExporterProcess(['--database-url', server.url, '--refresh-on-scrape', '--statement-timeout', '10s']);
    try {
      let samples = parseMetrics((await get(`${exporter.url}/metrics`)).body);
      expect(sample(samples, 'caseguard_up', { error: '' })).toBe(1);
      expect(sample(samples, 'caseguard_findings', { check: 'orphaned_progress', severity: 'error' })).toBe(1);

      await server.stop({ keepData: true });
      const down = await get(`${exporter.url}/metrics`);
      expect(down.status).toBe(200);
      samples = parseMetrics(down.body);
      expect(sample(samples, 'caseguard_up', { error: 'connection' })).toBe(0);
      expect(samples.filter((s) => s.name === 'caseguard_up')).toHaveLength(1);
      // the last values stay
      expect(sample(samples, 'caseguard_findings', { check: 'orphaned_progress', severity: 'error' })).toBe(1);
      expect(sample(samples, 'caseguard_refresh_failures_total', { error: 'connection' })).toBe(1);
      expect(JSON.parse((await get(`${exporter.url}/healthz`)).body)).toMatchObject({ status: 'degraded', error: 'connection' });

      server = await startServerFrom(bin, { dataDir: server.dataDir, port });
      const back = new pg.Pool({ connectionString: server.url, max: 1 });
      await back.query("INSERT INTO mega_agent.case_intake_progress (user_id, case_id) VALUES ('u2', $1)", [id(2)]);
      await back.end();
      samples = parseMetrics((await get(`${exporter.url}/metrics`)).body);
      expect(sample(samples, 'caseguard_up', { error: '' })).toBe(1);
      expect(sample(samples, 'caseguard_findings', { check: 'orphaned_progress', severity: 'error' })).toBe(2);
      expect(exporter.stderr()).toContain('"event":"exporter.refresh_failed","error":"connection"');
      expect(exporter.stderr()).not.toMatch(/u1|u2|\n\s+at /);
      expect(await exporter.stop('SIGTERM')).toBe(0);
    } finally {
      if (exporter.child.exitCode === null) await exporter.stop('SIGKILL');
      await server.stop();
    }
  });
});

describe('a real Prometheus scraping the exporter', () => {
  it('stores caseguard_findings with the numbers of scan, queried through its HTTP API', async () => {
    const t = await createTestDatabase();
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'caseguard-prometheus-'));
    let prometheus: ChildProcess | undefined;
    const exporter = await startExporterProcess(['--database-url', t.url, '--interval', '1s']);
    try {
      await seedDamage(t.pool);
      const target = new URL(exporter.url).host;
      await fs.writeFile(
        path.join(dir, 'prometheus.yml'),
        `global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: caseguard\n    static_configs:\n      - targets: ['${target}']\n`,
      );
      const port = await freePort();
      prometheus = spawn(
        'prometheus',
        [
          `--config.file=${path.join(dir, 'prometheus.yml')}`,
          `--storage.tsdb.path=${path.join(dir, 'data')}`,
          `--web.listen-address=127.0.0.1:${port}`,
        ],
        { stdio: 'ignore' },
      );
      let spawnError: Error | undefined;
      prometheus.on('error', (error) => (spawnError = error));
      // Wait for a scrape that saw the damage (the first one may predate the fixture).
      type Result = { metric: { check: string }; value: [number, string] };
      let results: Result[] = [];
      for (let i = 0; i < 600; i++) {
        if (spawnError) throw new Error(`prometheus is needed (Debian package prometheus; .ci/run installs it): ${spawnError.message}`);
        const r = await fetch(
          `http://127.0.0.1:${port}/api/v1/query?query=${encodeURIComponent('caseguard_findings{job="caseguard"}')}`,
        ).catch(() => undefined);
        const body = r?.ok ? ((await r.json()) as { data: { result: Result[] } }) : undefined;
        results = body?.data.result ?? [];
        if (results.length === 7 && results.every((s) => Number(s.value[1]) === expected[s.metric.check as keyof typeof expected])) break;
        await sleep(100);
      }
      expect(Object.fromEntries(results.map((s) => [s.metric.check, Number(s.value[1])]))).toEqual({
        orphaned_progress: expected.orphaned_progress,
        invalid_case_id: expected.invalid_case_id,
        noncanonical_case_id: expected.noncanonical_case_id,
        duplicate_progress: expected.duplicate_progress,
        orphaned_memory: expected.orphaned_memory,
        dangling_active_case: expected.dangling_active_case,
        owner_mismatch: expected.owner_mismatch,
      });
      const up = (await (await fetch(`http://127.0.0.1:${port}/api/v1/query?query=up{job="caseguard"}`)).json()) as {
        data: { result: Array<{ value: [number, string] }> };
      };
      expect(up.data.result[0]?.value[1]).toBe('1');
    } finally {
      if (prometheus && prometheus.exitCode === null) {
        const done = new Promise((resolve) => prometheus!.once('exit', resolve));
        prometheus.kill('SIGTERM');
        await done;
      }
      expect(await exporter.stop()).toBe(0);
      await fs.rm(dir, { recursive: true, force: true });
      await t.drop();
    }
  });
});
