/**
 * Failover in the middle of a run, on a real pg_auto_failover formation (a monitor and two nodes
 * from Debian's packages), reached the way its users reach it: the URL `pg_autoctl show uri`
 * prints, both hosts and target_session_attrs=read-write. `pg_autoctl perform failover` while
 * recover, fk add, recover --undo, quarantine restore and simulate are writing, and while the
 * exporter is scraped. Each time: exit 3 in one line, data and journal agree on the new primary,
 * controls untouched, and a rerun through the same string reaches the new primary and converges.
 * The formation is started once; every test has a database of its own on it.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrate } from '../../src/core/db/migrate.js';
import { startFormation, type Formation } from '../helpers/autoFailover.js';
import { BIN, runCli } from '../helpers/cli.js';
import { get, startExporterProcess } from '../helpers/exporter.js';
import { F, seedControls } from '../helpers/fixtures.js';
import { seedOrphans } from '../helpers/orphans.js';

let formation: Formation;

beforeAll(async () => {
  formation = await startFormation();
});
afterAll(() => formation?.stop());

interface Db {
  name: string;
  /** The formation's URL for this database: both hosts, read-write. */
  url: string;
  /** A pool on the node that is primary now (after a failover: call primary() again). */
  primary(): Promise<pg.Pool>;
  end(): Promise<void>;
}

/** A migrated database of its own on the formation, with the controls seeded. */
async function database(): Promise<Db> {
  const name = `cg_failover_${randomBytes(4).toString('hex')}`;
  const admin = new pg.Client({ connectionString: formation.nodeUrl(await formation.primaryPort()) });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  const pools: pg.Pool[] = [];
  const primary = async () => {
    const pool = new pg.Pool({ connectionString: formation.nodeUrl(await formation.primaryPort(), name), max: 2 });
    pool.on('error', () => undefined);
    pools.push(pool);
    return pool;
  };
  const pool = await primary();
  await migrate(pool);
  await seedControls(pool);
  return { name, url: formation.urlOf(name), primary, end: async () => void (await Promise.all(pools.map((p) => p.end()))) };
}

const cli = (url: string, ...args: string[]) => runCli([...args, '--database-url', url], { timeoutMs: 180_000 });
const count = async (pool: pg.Pool, query: string, params: unknown[] = []) => Number((await pool.query(query, params)).rows[0].n);
const caseguardLines = (stderr: string) => stderr.split('\n').filter((l) => l.startsWith('caseguard:'));
const occurrences = (text: string, event: string) => text.split(`"event":"${event}"`).length - 1;

/**
 * Runs the binary and fails the formation over once `ready` says it got there: its stderr (a log
 * event), or what the server shows of it (checked every 100 ms).
 */
async function failoverWhen(args: string[], ready: (stderr: string) => boolean | Promise<boolean>) {
  const child = spawn(process.execPath, [BIN, ...args], { env: { ...process.env, CI: '' }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  let failedOver: Promise<void> | undefined;
  const check = async () => {
    if (!failedOver && (await ready(stderr))) failedOver ??= formation.failover();
  };
  child.stdout.resume();
  child.stderr.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
    void check();
  });
  const polling = setInterval(() => void check().catch(() => undefined), 100);
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  clearInterval(polling);
  await failedOver;
  await formation.settled();
  return { code, stderr, failedOver: failedOver !== undefined };
}

/** The controls' rows, to compare before and after. */
async function controls(pool: pg.Pool) {
  return (
    await pool.query(`SELECT c.case_id, c.title, p.current_block FROM mega_agent.cases c
                      LEFT JOIN mega_agent.case_intake_progress p ON p.case_id::text = c.case_id::text
                      WHERE c.user_id LIKE 'control-%' ORDER BY c.case_id, p.current_block`)
  ).rows;
}

/** Checks what every interrupted run must leave: one line, exit 3, and the run's own items. */
function expectStoppedInOneLine(r: { code: number | null; stderr: string; failedOver: boolean }, command: string) {
  expect(r.failedOver).toBe(true);
  expect(r.code, r.stderr).toBe(3);
  const lines = caseguardLines(r.stderr);
  expect(lines, r.stderr).toHaveLength(1);
  expect(lines[0]).toMatch(new RegExp(`${command} run \\d+ stopped before its next write`));
  expect(r.stderr).not.toMatch(/internal error|\n\s+at /);
}

/**
 * A failover case: a database of its own, seeded, its controls read; the case runs; the controls
 * are the same on the node that is primary afterwards.
 */
async function failoverCase(seed: (pool: pg.Pool) => Promise<void>, body: (db: Db, pool: pg.Pool) => Promise<void>): Promise<void> {
  const db = await database();
  try {
    const pool = await db.primary();
    await seed(pool);
    const before = await controls(pool);
    await body(db, pool);
    expect(await controls(await db.primary())).toEqual(before);
  } finally {
    await db.end();
  }
}

describe('several hosts on a real primary and standby', () => {
  /** The formation's two nodes, standby first, as a host list with the given query. */
  async function standbyFirst(name: string, query = ''): Promise<{ url: string; primary: number; standby: number }> {
    const primary = await formation.primaryPort();
    const standby = (await formation.state()).find((n) => n.port !== primary)!.port;
    return { url: `postgres://postgres@127.0.0.1:${standby},127.0.0.1:${primary}/${name}?sslmode=disable${query}`, primary, standby };
  }
  const targetOf = (stderr: string) => /"event":"db\.target","database":"([^"]*)"/.exec(stderr)?.[1] ?? '';

  it('a command that writes skips the standby listed first; one that reads takes the first host unless asked', async () => {
    const db = await database();
    try {
      await seedOrphans(await db.primary(), 3);
      const { url, primary, standby } = await standbyFirst(db.name);
      const recover = await cli(url, 'recover', '--yes', '--log-level', 'info');
      expect(recover.code, recover.stderr).toBe(0);
      expect(targetOf(recover.stderr)).toMatch(new RegExp(`127\\.0\\.0\\.1:${primary}.*host 2 of 2, read-write`));
      const scan = await cli(url, 'scan', '--log-level', 'info');
      expect(scan.code, scan.stdout).toBe(0);
      expect(targetOf(scan.stderr)).toMatch(new RegExp(`127\\.0\\.0\\.1:${standby}.*host 1 of 2, any`));
      for (const [attrs, port] of [
        ['primary', primary],
        ['read-write', primary],
        ['standby', standby],
        ['read-only', standby],
        ['prefer-standby', standby],
      ] as const) {
        const r = await cli(`${url}&target_session_attrs=${attrs}`, 'scan', '--log-level', 'info');
        expect(r.code, `${attrs}: ${r.stderr}`).toBe(0);
        expect(targetOf(r.stderr), attrs).toMatch(new RegExp(`127\\.0\\.0\\.1:${port}.*, ${attrs}\\)`));
      }
    } finally {
      await db.end();
    }
  });

  it('no host with the attribute: exit 3 in one line naming each host and why; a write asked of a standby: exit 2', async () => {
    const db = await database();
    try {
      const name = db.name;
      const { standby } = await standbyFirst(name);
      const dead = `postgres://postgres@127.0.0.1:1,127.0.0.1:${standby}/${name}?sslmode=disable&connect_timeout=2`;
      const none = await cli(`${dead}&target_session_attrs=read-write`, 'recover', '--yes');
      expect(none.code).toBe(3);
      expect(caseguardLines(none.stderr)).toEqual([
        expect.stringMatching(
          new RegExp(
            `no host is read-write: 127\\.0\\.0\\.1:1 \\(cannot connect: .*\\); 127\\.0\\.0\\.1:${standby} \\(a hot standby, not read-write\\)`,
          ),
        ),
      ]);
      const readOnly = await cli(`${dead}&target_session_attrs=standby`, 'recover', '--yes');
      expect(readOnly.code).toBe(2);
      expect(caseguardLines(readOnly.stderr)).toEqual([expect.stringMatching(/is a hot standby \(read-only\)/)]);
      const ports = await cli(`host=127.0.0.1,127.0.0.1 port=1,2,3 dbname=${name}`, 'scan');
      expect(ports.code).toBe(2);
      expect(ports.stderr).toMatch(/names 2 host\(s\) but 3 ports/);
    } finally {
      await db.end();
    }
  });
});

describe('a failover in the middle of a run (pg_auto_failover)', () => {
  it('recover: exit 3; the new primary journals exactly what it holds; a rerun through the same URL converges', () =>
    failoverCase(
      (pool) => seedOrphans(pool, 20_000),
      async (db) => {
        const r = await failoverWhen(
          ['recover', '--yes', '--quarantine', '--batch-size', '200', '--database-url', db.url],
          (stderr) => occurrences(stderr, 'recover.batch_committed') >= 5,
        );
        expectStoppedInOneLine(r, 'recover');
        const now = await db.primary();
        const run = (await now.query("SELECT run_id FROM caseguard.runs WHERE command = 'recover'")).rows[0].run_id as string;
        // what replication carried over: the cases the run made there, and its journal items, agree
        const journaled = await count(
          now,
          "SELECT coalesce(sum(row_count), 0) AS n FROM caseguard.run_items WHERE run_id = $1 AND action = 'case_created'",
          [run],
        );
        expect(await count(now, "SELECT count(*) AS n FROM mega_agent.cases WHERE metadata->>'run_id' = $1", [run])).toBe(journaled);
        expect(journaled).toBeGreaterThan(0);
        expect(journaled).toBeLessThan(20_000);
        const rerun = await cli(db.url, 'recover', '--yes', '--quarantine');
        expect(rerun.code, rerun.stderr).toBe(0);
        expect(rerun.stderr).toContain(`127.0.0.1:${await formation.primaryPort()}`);
        const runs = (await now.query("SELECT status FROM caseguard.runs WHERE command = 'recover' ORDER BY run_id")).rows;
        expect(runs.map((x) => x.status)).toEqual(['abandoned', 'completed']);
        expect((await cli(db.url, 'scan')).code).toBe(0);
        expect(await count(now, "SELECT count(*) AS n FROM mega_agent.cases WHERE title = 'Intake Session (Recovered)'")).toBe(20_000);
        expect(await count(now, 'SELECT count(*) AS n FROM mega_agent.case_intake_progress')).toBe(20_000 + F.controls.length);
      },
    ));

  it('recover --undo (one transaction): failover while it waits inside it: exit 3, nothing of it on the new primary; a rerun undoes all', () =>
    failoverCase(
      (pool) => seedOrphans(pool, 10_000),
      async (db, pool) => {
        expect((await cli(db.url, 'recover', '--yes')).code).toBe(0);
        // a row lock on one of the run's cases keeps the undo waiting inside its transaction
        const holder = await pool.connect();
        holder.on('error', () => undefined);
        await holder.query('BEGIN');
        await holder.query("SELECT 1 FROM mega_agent.cases WHERE metadata->>'run_id' = '1' LIMIT 1 FOR UPDATE");
        const waiting = async () =>
          (await count(
            pool,
            `SELECT count(*) AS n FROM pg_stat_activity
            WHERE datname = current_database() AND application_name LIKE 'caseguard recover%' AND wait_event_type = 'Lock'`,
          ).catch(() => 0)) > 0;
        const r = await failoverWhen(['recover', '--undo', '1', '--yes', '--database-url', db.url], waiting);
        holder.release(true);
        expectStoppedInOneLine(r, 'recover --undo');
        const now = await db.primary();
        expect(await count(now, 'SELECT count(*) AS n FROM caseguard.run_items WHERE run_id = 2')).toBe(0);
        expect(await count(now, "SELECT count(*) AS n FROM mega_agent.cases WHERE metadata->>'run_id' = '1'")).toBe(10_000);
        const rerun = await cli(db.url, 'recover', '--undo', '1', '--yes');
        expect(rerun.code, rerun.stderr).toBe(0);
        expect(await count(now, "SELECT count(*) AS n FROM mega_agent.cases WHERE metadata->>'run_id' = '1'")).toBe(0);
        expect(await count(now, "SELECT count(*) AS n FROM mega_agent.case_intake_progress WHERE user_id LIKE 'orphan-%'")).toBe(10_000);
      },
    ));

  it('quarantine restore: exit 3; every row is either back or still in the quarantine, never both or neither; a rerun puts back the rest', () =>
    failoverCase(
      async (pool) => {
        await pool.query(
          `INSERT INTO mega_agent.case_intake_progress (user_id, case_id, current_block)
           SELECT 'bad-' || g, 'not-a-uuid-' || g, 'contact' FROM generate_series(1, 30000) g`,
        );
      },
      async (db) => {
        expect((await cli(db.url, 'recover', '--yes', '--quarantine')).code).toBe(0);
        const r = await failoverWhen(['quarantine', 'restore', '1', '--yes', '--database-url', db.url], (stderr) =>
          stderr.includes('"restore.page_committed"'),
        );
        expectStoppedInOneLine(r, 'quarantine restore');
        const now = await db.primary();
        const back = await count(now, "SELECT count(*) AS n FROM mega_agent.case_intake_progress WHERE user_id LIKE 'bad-%'");
        const aside = await count(now, 'SELECT count(*) AS n FROM caseguard.quarantine WHERE run_id = 1 AND restored_at IS NULL');
        expect(back + aside).toBe(30_000);
        const rerun = await cli(db.url, 'quarantine', 'restore', '1', '--yes');
        expect(rerun.code, rerun.stderr).toBe(0);
        expect(await count(now, "SELECT count(*) AS n FROM mega_agent.case_intake_progress WHERE user_id LIKE 'bad-%'")).toBe(30_000);
      },
    ));

  it('fk add mid-backfill: exit 3; fk status names the partial run on the new primary; a rerun completes it', () =>
    failoverCase(
      async (pool) => {
        await pool.query(`
        INSERT INTO mega_agent.cases (case_id, user_id, title)
        SELECT ('00000000-0000-4000-8000-' || lpad(g::text, 12, '0'))::uuid, 'fk-' || g, 'fk case' FROM generate_series(1, 20000) g;
        INSERT INTO mega_agent.case_intake_progress (user_id, case_id, current_block)
        SELECT 'fk-' || g, '00000000-0000-4000-8000-' || lpad(g::text, 12, '0'), 'contact' FROM generate_series(1, 20000) g`);
      },
      async (db) => {
        const r = await failoverWhen(
          ['fk', 'add', '--yes', '--batch-size', '500', '--log-level', 'debug', '--database-url', db.url],
          (stderr) => occurrences(stderr, 'fk.backfill_batch') >= 3,
        );
        expectStoppedInOneLine(r, 'fk add');
        const status = await cli(db.url, 'fk', 'status');
        expect(status.stdout).toMatch(/Partial \(progress\)/);
        const rerun = await cli(db.url, 'fk', 'add', '--yes');
        expect(rerun.code, rerun.stderr).toBe(0);
        expect(JSON.parse((await cli(db.url, 'fk', 'status', '--format', 'json')).stdout).complete).toBe(true);
        expect((await cli(db.url, 'scan')).code).toBe(0);
        const now = await db.primary();
        expect(await count(now, "SELECT count(*) AS n FROM mega_agent.case_intake_progress WHERE user_id LIKE 'fk-%'")).toBe(20_000);
      },
    ));

  it('simulate: stops starting users once its server is gone, exit 3 in one line; no orphan is left', async () => {
    const db = await database();
    try {
      const r = await failoverWhen(
        ['simulate', '--users', '100000', '--concurrency', '8', '--log-level', 'debug', '--database-url', db.url],
        (stderr) => occurrences(stderr, 'intake.completed') >= 20,
      );
      expect(r.failedOver).toBe(true);
      expect(r.code, r.stderr).toBe(3);
      const lines = caseguardLines(r.stderr);
      expect(lines).toEqual([expect.stringMatching(/the server was lost after \d+ user\(s\)/)]);
      const scan = await cli(db.url, 'scan');
      expect(scan.code, scan.stdout).toBe(0);
    } finally {
      await db.end();
    }
  });

  it('exporter: caseguard_up 0 while the primary is away, then 1 again on the new primary', async () => {
    const db = await database();
    const exporter = await startExporterProcess(['--database-url', db.url, '--interval', '200ms']);
    try {
      const up = async () => /^caseguard_up\{[^}]*\} (\d)/m.exec((await get(`${exporter.url}/metrics`)).body)?.[1];
      expect(await up()).toBe('1');
      const old = await formation.primaryPort();
      const seen: string[] = [];
      let failingOver = true;
      const scraping = (async () => {
        while (failingOver) {
          const value = await up();
          if (value && seen.at(-1) !== value) seen.push(value);
          await new Promise((resolve) => setTimeout(resolve, 50));
        }
      })();
      await formation.failover();
      await formation.settled();
      const until = Date.now() + 30_000;
      while (seen.at(-1) !== '1' || seen.length < 3) {
        if (Date.now() > until) break;
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      failingOver = false;
      await scraping;
      expect(seen).toEqual(['1', '0', '1']);
      const fresh = await formation.primaryPort();
      expect(fresh).not.toBe(old);
      // the exporter reached the hosts again and read the new primary
      const targets = exporter.stderr().match(/"event":"db\.target","database":"[^"]*"/g) ?? [];
      expect(targets.at(-1)).toContain(`127.0.0.1:${fresh}`);
    } finally {
      expect(await exporter.stop('SIGTERM')).toBe(0);
      await db.end();
    }
  });
});
