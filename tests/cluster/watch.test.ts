/**
 * caseguard watch on a server of the tests' own with wal_level=logical (the machine's
 * PostgreSQL binaries), with simulate --legacy-rate writing meanwhile: the orphans it logs, the
 * counts it serves against a full scan's, a restart after kill -9, the refusals, the slot's lag
 * and --drop-slot. The server is started once; every test has a database of its own on it.
 */
import { randomUUID } from 'node:crypto';
import fs from 'node:fs/promises';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrate } from '../../src/core/db/migrate.js';
import { runCli } from '../helpers/cli.js';
import { get } from '../helpers/exporter.js';
import { F, seedControls } from '../helpers/fixtures.js';
import { parseMetrics, sample } from '../helpers/monitor.js';
import { startProxy } from '../helpers/proxy.js';
import { migratedDatabaseOn, startServerFrom, systemBinDir, type TestServer } from '../helpers/server.js';
import { startWatchProcess, type RunningWatch, type WatchEvent } from '../helpers/watch.js';

let server: TestServer;
const pools: pg.Pool[] = [];

beforeAll(async () => {
  server = await startServerFrom(systemBinDir(), { extraConf: ['wal_level=logical', 'max_replication_slots=10', 'max_wal_senders=10'] });
});
afterAll(async () => {
  await Promise.all(pools.map((p) => p.end()));
  await server?.stop();
});

/** A migrated database of its own, with the controls seeded. */
async function database(): Promise<{ url: string; pool: pg.Pool; slot: string }> {
  const { name, url, pool } = await migratedDatabaseOn(server, 'cg_watch');
  pools.push(pool);
  await seedControls(pool);
  return { url, pool, slot: `caseguard_watch_${name}` };
}

const cli = (url: string, ...args: string[]) => runCli([...args, '--database-url', url], { timeoutMs: 120_000 });
const slots = async (pool: pg.Pool) =>
  (await pool.query<{ slot_name: string }>('SELECT slot_name FROM pg_replication_slots WHERE database = current_database()')).rows.map(
    (r) => r.slot_name,
  );
const oneLine = (stderr: string) => stderr.split('\n').filter((l) => l.startsWith('caseguard:'));

/** What a full scan finds, per check, and the missing cases. */
async function fullScan(url: string): Promise<Record<string, number>> {
  const r = await cli(url, 'scan', '--format', 'json');
  const report = JSON.parse(r.stdout) as { checks: { id: string; count: number }[]; summary: { missingCases: number } };
  return { ...Object.fromEntries(report.checks.map((c) => [c.id, c.count])), missingCases: report.summary.missingCases };
}

/** What watch serves on /metrics, in the same terms. */
async function served(watch: RunningWatch): Promise<Record<string, number>> {
  const samples = parseMetrics((await get(`${watch.url}/metrics`)).body);
  const checks = samples.filter((s) => s.name === 'caseguard_findings');
  return {
    ...Object.fromEntries(checks.map((s) => [s.labels.check!, s.value])),
    missingCases: sample(samples, 'caseguard_missing_cases'),
  };
}

/** Waits until watch's counts equal a full scan's (watch is behind by at most a commit or two). */
async function converged(watch: RunningWatch, url: string): Promise<Record<string, number>> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    const [scan, now] = [await fullScan(url), await served(watch)];
    if (JSON.stringify(scan) === JSON.stringify(now) || Date.now() > deadline) {
      expect(now).toEqual(scan);
      return scan;
    }
    await watch.waitFor(() => false, 200).catch(() => undefined);
  }
}

const detectedFor = (watch: RunningWatch, user: string) => (e: WatchEvent) => e.event === 'watch.orphan_detected' && e.user_id === user;

describe('caseguard watch', () => {
  it('logs each orphan within a second of its commit and serves the counts a full scan finds, while simulate writes', async () => {
    const { url, pool } = await database();
    const watch = await startWatchProcess(url, ['--listen', '127.0.0.1:0']);
    expect(watch.started).toMatchObject({ created: true, findings: 0, missing_cases: 0 });
    const simulating = cli(url, 'simulate', '--users', '150', '--concurrency', '6', '--legacy-rate', '0.3', '--seed', '7');

    // a progress row, a memory row and a pointer written without their case, and a case deleted while referenced
    const lone = randomUUID();
    await pool.query("INSERT INTO mega_agent.case_intake_progress (user_id, case_id, current_block) VALUES ('w-progress', $1, 'contact')", [
      lone,
    ]);
    await pool.query("INSERT INTO mega_agent.case_memory (case_id, user_id, kind, content) VALUES ($1, 'w-memory', 'note', '{}')", [
      randomUUID(),
    ]);
    await pool.query("INSERT INTO mega_agent.bot_user_context (user_id, active_case_id) VALUES ('w-pointer', $1)", [randomUUID()]);
    const deleted = F.controls[0]!;
    await pool.query('DELETE FROM mega_agent.cases WHERE case_id = $1', [deleted.caseId]);
    for (const [user, check] of [
      ['w-progress', 'orphaned_progress'],
      ['w-memory', 'orphaned_memory'],
      ['w-pointer', 'dangling_active_case'],
      [deleted.user, 'orphaned_progress'],
    ] as const) {
      const event = await watch.waitFor(detectedFor(watch, user), 10_000);
      expect(event.check).toBe(check);
      expect(event.delay_ms as number).toBeLessThan(1000);
    }
    // the deleted case's memory row and pointer are orphans too
    await watch.waitFor((e) => detectedFor(watch, deleted.user)(e) && e.check === 'dangling_active_case', 10_000);
    // the case made after all: resolved
    await pool.query("INSERT INTO mega_agent.cases (case_id, user_id, title) VALUES ($1, 'w-progress', 'late')", [lone]);
    const resolved = await watch.waitFor((e) => e.event === 'watch.orphan_resolved' && e.user_id === 'w-progress', 10_000);
    expect(resolved.delay_ms as number).toBeLessThan(1000);

    expect((await simulating).code).toBe(0);
    const scan = await converged(watch, url);
    expect(scan.orphaned_progress).toBeGreaterThan(1);
    // the other controls were never named
    const named = new Set(watch.events('watch.orphan_detected').map((e) => e.user_id));
    for (const c of F.controls.slice(1)) expect(named.has(c.user)).toBe(false);
    expect(await watch.stop('SIGTERM')).toBe(0);
    expect(watch.events('watch.stopped')).toHaveLength(1);
  });

  it('after kill -9 resumes from its saved findings and the slot: misses nothing, tells nothing twice', async () => {
    const { url, pool, slot } = await database();
    const first = await startWatchProcess(url);
    const simulating = cli(url, 'simulate', '--users', '200', '--concurrency', '6', '--legacy-rate', '0.3', '--seed', '11');
    await first.waitFor((e) => e.event === 'watch.orphan_detected', 60_000);
    first.child.kill('SIGKILL');
    await first.exited;
    // what the first process had told: detected and not resolved since
    const key = (e: WatchEvent) => JSON.stringify([e.check, e.table, e.user_id, e.case_id]);
    const told = new Set<string>();
    for (const e of first.events()) {
      if (e.event === 'watch.orphan_detected') told.add(key(e));
      if (e.event === 'watch.orphan_resolved') told.delete(key(e));
    }
    // written while no watch follows the slot
    await pool.query(`INSERT INTO mega_agent.case_intake_progress (user_id, case_id, current_block)
                      SELECT 'down-' || g, gen_random_uuid()::text, 'contact' FROM generate_series(1, 5) g`);
    expect((await simulating).code).toBe(0);

    const second = await startWatchProcess(url, ['--listen', '127.0.0.1:0']);
    expect(second.started).toMatchObject({ created: false, from: 'saved' });
    for (let g = 1; g <= 5; g++) await second.waitFor(detectedFor(second, `down-${g}`), 10_000);
    await converged(second, url);
    // nothing the first process told and that still holds is told again
    const again = second.events('watch.orphan_detected').filter((e) => told.has(key(e)));
    expect(again).toEqual([]);

    // a commit received but not applied yet (its judgement waits for a lock on cases) is not acknowledged
    const locker = await pool.connect();
    try {
      await locker.query('BEGIN');
      await locker.query('LOCK TABLE mega_agent.cases IN ACCESS EXCLUSIVE MODE');
      await pool.query(
        "INSERT INTO mega_agent.case_intake_progress (user_id, case_id, current_block) VALUES ('unapplied', $1, 'contact')",
        [randomUUID()],
      );
      const lsn = (await pool.query<{ lsn: string }>('SELECT pg_current_wal_lsn()::text AS lsn')).rows[0]!.lsn;
      const slotState = () =>
        pool.query<{ sent: boolean; confirmed: boolean }>(
          `SELECT r.sent_lsn >= $2::pg_lsn AS sent, s.confirmed_flush_lsn >= $2::pg_lsn AS confirmed
             FROM pg_replication_slots s JOIN pg_stat_replication r ON r.pid = s.active_pid WHERE s.slot_name = $1`,
          [slot, lsn],
        );
      const deadline = Date.now() + 10_000;
      while (!(await slotState()).rows[0]?.sent && Date.now() < deadline) await pool.query('SELECT pg_sleep(0.05)');
      // the status it sends every few seconds must not confirm it either
      await pool.query('SELECT pg_sleep(1)');
      expect((await slotState()).rows[0]).toEqual({ sent: true, confirmed: false });
      second.child.kill('SIGKILL');
      await second.exited;
    } finally {
      await locker.query('COMMIT').catch(() => undefined);
      locker.release();
    }
    const third = await startWatchProcess(url, ['--listen', '127.0.0.1:0']);
    expect(third.started).toMatchObject({ from: 'saved' });
    await third.waitFor(detectedFor(third, 'unapplied'), 10_000);
    await converged(third, url);
    expect(await third.stop()).toBe(0);
  });

  it('refuses in one line and makes nothing: no logical WAL, no REPLICATION, bad names, no terminal, a dry run', async () => {
    const { url, pool } = await database();
    const plain = await startServerFrom(systemBinDir());
    try {
      const plainPool = new pg.Pool({ connectionString: plain.url, max: 1 });
      await migrate(plainPool);
      await plainPool.end();
      const r = await cli(plain.url, 'watch', '--yes');
      expect(r.code).toBe(4);
      expect(oneLine(r.stderr)).toEqual([expect.stringContaining('wal_level = logical')]);
    } finally {
      await plain.stop();
    }
    await pool.query('CREATE ROLE cg_no_replication LOGIN; GRANT USAGE ON SCHEMA mega_agent TO cg_no_replication;');
    const reader = await cli(url.replace('postgres@', 'cg_no_replication@'), 'watch', '--yes');
    expect(reader.code).toBe(3);
    expect(oneLine(reader.stderr)).toEqual([expect.stringContaining('REPLICATION')]);
    expect((await cli(url, 'watch', '--slot', 'Bad-Name', '--yes')).code).toBe(2);
    const noTerminal = await cli(url, 'watch');
    expect(noTerminal.code).toBe(2);
    expect(noTerminal.stderr).toContain('--yes');
    const dry = await cli(url, 'watch', '--dry-run');
    expect(dry.code).toBe(0);
    expect(dry.stdout).toContain('would make publication caseguard_watch FOR TABLE mega_agent.cases');
    expect(await slots(pool)).toEqual([]);
    expect(Number((await pool.query('SELECT count(*) AS n FROM pg_publication')).rows[0].n)).toBe(0);
  });

  it('one watch per slot; a slot for another publication, or not made by watch, is refused', async () => {
    const { url, pool, slot } = await database();
    const watch = await startWatchProcess(url);
    const twice = await cli(url, 'watch', '--yes');
    expect(twice.code).toBe(5);
    expect(oneLine(twice.stderr)).toEqual([expect.stringContaining('one watch per slot')]);
    expect(await watch.stop()).toBe(0);
    const other = await cli(url, 'watch', '--publication', 'another_pub', '--yes');
    expect(other.code).toBe(2);
    expect(oneLine(other.stderr)).toEqual([expect.stringContaining('follows publication caseguard_watch')]);
    await pool.query("SELECT pg_create_logical_replication_slot('foreign_slot', 'pgoutput')");
    const foreign = await cli(url, 'watch', '--slot', 'foreign_slot', '--yes');
    expect(foreign.code).toBe(2);
    expect(oneLine(foreign.stderr)).toEqual([expect.stringContaining('did not make it')]);
    expect((await cli(url, 'watch', '--slot', 'foreign_slot', '--drop-slot', '--yes')).code).toBe(2);
    expect((await slots(pool)).sort()).toEqual([slot, 'foreign_slot']);
    await pool.query("SELECT pg_drop_replication_slot('foreign_slot')");
  });

  it('warns while the slot retains more than --max-slot-lag; --drop-slot removes the slot and its publication', async () => {
    const { url, pool, slot } = await database();
    const first = await startWatchProcess(url);
    expect(await first.stop()).toBe(0);
    // WAL the slot must keep while nobody follows it
    await pool.query(
      `INSERT INTO mega_agent.case_memory (case_id, user_id, kind, content)
                      SELECT $1, 'control-2', 'note', jsonb_build_object('pad', repeat('x', 500)) FROM generate_series(1, 2000)`,
      [F.controls[1]!.caseId],
    );
    const lagging = await startWatchProcess(url, ['--max-slot-lag', '64kB']);
    const warning = await lagging.waitFor((e) => e.event === 'watch.slot_lag', 20_000);
    expect(warning.retained_bytes as number).toBeGreaterThan(64 * 1024);
    const busy = await cli(url, 'watch', '--drop-slot', '--yes');
    expect(busy.code).toBe(5);
    expect(await lagging.stop()).toBe(0);
    const dropped = await cli(url, 'watch', '--drop-slot', '--yes');
    expect(dropped.code).toBe(0);
    expect(dropped.stdout).toContain(`Dropped slot ${slot} and publication caseguard_watch`);
    expect(await slots(pool)).toEqual([]);
    expect(Number((await pool.query('SELECT count(*) AS n FROM pg_publication')).rows[0].n)).toBe(0);
    expect(Number((await pool.query('SELECT count(*) AS n FROM caseguard.watch_slots')).rows[0].n)).toBe(0);
  });

  it('a network that goes silent ends it within --network-timeout (exit 3, one line); the rerun resumes', async () => {
    const { url } = await database();
    const proxy = await startProxy({ host: '127.0.0.1', port: Number(new URL(url).port) });
    try {
      const watch = await startWatchProcess(proxy.via(url), ['--network-timeout', '3s']);
      const t0 = Date.now();
      proxy.freeze();
      expect(await watch.exited).toBe(3);
      // --network-timeout, then at most the 5 s every command gives its connections to close
      expect(Date.now() - t0).toBeLessThan(15_000);
      expect(oneLine(watch.stderr())).toEqual([expect.stringContaining('went silent')]);
      proxy.thaw();
      const again = await startWatchProcess(url);
      expect(again.started).toMatchObject({ created: false, from: 'saved' });
      expect(await again.stop()).toBe(0);
    } finally {
      await proxy.close();
    }
  });

  it('authenticates its replication connection with the password of the URL (SCRAM), and never shows it', async () => {
    const { url, pool } = await database();
    const hba = (await pool.query<{ hba_file: string }>('SHOW hba_file')).rows[0]!.hba_file;
    const before = await fs.readFile(hba, 'utf8');
    await pool.query("CREATE ROLE cg_watch_pw SUPERUSER LOGIN PASSWORD 'pw-Secret-1'");
    await fs.writeFile(hba, `host all cg_watch_pw 127.0.0.1/32 scram-sha-256\n${before}`);
    await pool.query('SELECT pg_reload_conf()');
    try {
      const withPassword = url.replace('postgres@', 'cg_watch_pw:pw-Secret-1@');
      const refused = await cli(url.replace('postgres@', 'cg_watch_pw:wrong@'), 'watch', '--yes');
      expect(refused.code).toBe(3);
      const watch = await startWatchProcess(withPassword);
      expect(watch.started).toMatchObject({ created: true });
      expect(await watch.stop()).toBe(0);
      expect(watch.stderr()).not.toContain('pw-Secret-1');
    } finally {
      await fs.writeFile(hba, before);
      await pool.query('SELECT pg_reload_conf()');
    }
  });
});
