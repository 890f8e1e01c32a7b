/**
 * Runs crashed and signalled on a real server of this file's own (the machine's PostgreSQL
 * binaries; autovacuum off, so caseguard's tables keep no statistics, as after a crash or on a
 * fresh install): an immediate shutdown in the middle of recover, SIGTERM in the middle of a
 * large quarantine restore, and journal sequences set back. Nothing is lost, data and journal
 * agree, and every command ends within its bound.
 */
import { spawn } from 'node:child_process';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BIN, runCli, signalWhen } from '../helpers/cli.js';
import { seedControls } from '../helpers/fixtures.js';
import { seedOrphans } from '../helpers/orphans.js';
import { migratedDatabaseOn, startServerFrom, systemBinDir, type CrashableServer } from '../helpers/server.js';

let server: CrashableServer;

beforeAll(async () => {
  server = await startServerFrom(systemBinDir(), { extraConf: ['autovacuum=off', 'max_connections=50'] });
});
afterAll(() => server?.stop());

/** A migrated database of its own on the file's server, with its URL and a pool. */
async function database(): Promise<{ url: string; pool: pg.Pool; end(): Promise<void> }> {
  const { url, pool } = await migratedDatabaseOn(server, 'cg_crash');
  return { url, pool, end: () => pool.end() };
}

const cli = (url: string, ...args: string[]) => runCli([...args, '--database-url', url], { timeoutMs: 120_000 });
const count = async (pool: pg.Pool, query: string, params: unknown[] = []) => Number((await pool.query(query, params)).rows[0].n);
const caseguardLines = (stderr: string) => stderr.split('\n').filter((l) => l.startsWith('caseguard:'));

/** n progress rows whose case_id is no uuid: what recover --quarantine moves aside. */
async function seedInvalid(pool: pg.Pool, n: number): Promise<void> {
  await pool.query(
    `INSERT INTO mega_agent.case_intake_progress (user_id, case_id, current_block)
     SELECT 'bad-' || g, 'not-a-uuid-' || g, 'contact' FROM generate_series(1, $1) g`,
    [n],
  );
}

describe('a crash and a signal on a real server', () => {
  it('recover, server crashed mid-run: exit 3 in one line that claims only what is durable; journal and data agree; a rerun converges', async () => {
    const db = await database();
    try {
      await seedControls(db.pool);
      await seedOrphans(db.pool, 30_000);
      const controls = await count(db.pool, "SELECT count(*) AS n FROM mega_agent.cases WHERE user_id LIKE 'control-%'");
      // crash once five batches have committed (the run logs each)
      const child = spawn(process.execPath, [BIN, 'recover', '--yes', '--batch-size', '200', '--database-url', db.url], {
        stdio: ['ignore', 'pipe', 'pipe'],
        env: { ...process.env, CI: '' },
      });
      let stderr = '';
      let crashed: Promise<void> | undefined;
      child.stderr.on('data', (chunk: Buffer) => {
        stderr += chunk.toString();
        if (!crashed && (stderr.match(/"recover.batch_committed"/g)?.length ?? 0) >= 5) crashed = server.crash();
      });
      const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
      await crashed;
      expect(code).toBe(3);
      const lines = caseguardLines(stderr);
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatch(
        /recover run \d+ stopped before its next write; up to \d+ batch\(es\) had committed, and the last of them may be lost/,
      );
      expect(stderr).not.toMatch(/internal error|\n\s+at /);

      await server.restart();
      const fresh = new pg.Pool({ connectionString: db.url, max: 2 });
      try {
        const run = (await fresh.query("SELECT run_id FROM caseguard.runs WHERE command = 'recover'")).rows[0].run_id as string;
        // data and journal agree: every case the run created is in its committed journal items, and no item names a case that is not there
        const journaled = await count(
          fresh,
          "SELECT coalesce(sum(row_count), 0) AS n FROM caseguard.run_items WHERE run_id = $1 AND action = 'case_created'",
          [run],
        );
        const created = await count(fresh, "SELECT count(*) AS n FROM mega_agent.cases WHERE metadata->>'run_id' = $1", [run]);
        expect(created).toBe(journaled);
        expect(created).toBeGreaterThan(0);
        const rerun = await cli(db.url, 'recover', '--yes');
        expect(rerun.code, rerun.stderr).toBe(0);
        const runs = (await fresh.query("SELECT status, counts FROM caseguard.runs WHERE command = 'recover' ORDER BY run_id")).rows;
        expect(runs[0]).toMatchObject({ status: 'abandoned', counts: expect.objectContaining({ case_created: journaled }) });
        expect(runs[1].status).toBe('completed');
        expect((await cli(db.url, 'scan')).code).toBe(0);
        expect(await count(fresh, "SELECT count(*) AS n FROM mega_agent.cases WHERE title = 'Intake Session (Recovered)'")).toBe(30_000);
        expect(await count(fresh, "SELECT count(*) AS n FROM mega_agent.cases WHERE user_id LIKE 'control-%'")).toBe(controls);
      } finally {
        await fresh.end();
      }
    } finally {
      await db.end();
    }
  });

  it('quarantine restore without statistics on the quarantine (fresh or reset by a crash) is linear: 40k rows back in one bounded run', async () => {
    const db = await database();
    try {
      await seedInvalid(db.pool, 40_000);
      expect((await cli(db.url, 'recover', '--yes', '--quarantine')).code).toBe(0);
      await server.crash();
      await server.restart();
      const pool = new pg.Pool({ connectionString: db.url, max: 2 });
      try {
        // never analysed: the planner knows nothing of the quarantine's rows
        expect(
          (await pool.query("SELECT reltuples FROM pg_class WHERE oid = 'caseguard.quarantine'::regclass")).rows[0].reltuples,
        ).toBeLessThan(1);
        const restore = await runCli(['quarantine', 'restore', '1', '--yes', '--database-url', db.url], { timeoutMs: 90_000 });
        expect(restore.code, restore.stderr).toBe(0);
        expect(restore.stdout).toMatch(/Restored 40000 row\(s\)/);
        expect(await count(pool, "SELECT count(*) AS n FROM mega_agent.case_intake_progress WHERE user_id LIKE 'bad-%'")).toBe(40_000);
      } finally {
        await pool.end();
      }
    } finally {
      await db.end();
    }
  });

  it('SIGTERM mid-restore ends it: exit 130, journaled interrupted, no statement of it left on the server; a rerun puts back the rest', async () => {
    const db = await database();
    try {
      await seedInvalid(db.pool, 40_000);
      expect((await cli(db.url, 'recover', '--yes', '--quarantine')).code).toBe(0);
      const stopped = await signalWhen(
        ['quarantine', 'restore', '1', '--yes', '--database-url', db.url],
        (stderr) => stderr.includes('"restore.page_committed"'),
        'SIGTERM',
      );
      expect(stopped.signalled).toBe(true);
      expect(stopped.code).toBe(130);
      expect(caseguardLines(stopped.stderr)).toEqual([
        expect.stringMatching(/quarantine restore interrupted after \d+ batch\(es\); run 2 is journaled as interrupted/),
      ]);
      expect((await db.pool.query('SELECT status FROM caseguard.runs WHERE run_id = 2')).rows[0].status).toBe('interrupted');
      // its backends end with its connections: none goes on running a statement of the stopped run
      const left = () =>
        count(db.pool, "SELECT count(*) AS n FROM pg_stat_activity WHERE application_name LIKE 'caseguard quarantine restore%'");
      for (let i = 0; (await left()) > 0 && i < 100; i++) await new Promise((r) => setTimeout(r, 50));
      expect(await left()).toBe(0);
      const back = await count(db.pool, "SELECT count(*) AS n FROM mega_agent.case_intake_progress WHERE user_id LIKE 'bad-%'");
      expect(back).toBeGreaterThan(0);
      expect(back).toBeLessThan(40_000);
      // journal and data agree on what the interrupted run put back
      expect(await count(db.pool, "SELECT count(*) AS n FROM caseguard.run_items WHERE run_id = 2 AND action = 'restored'")).toBe(back);
      const rest = await cli(db.url, 'quarantine', 'restore', '1', '--yes');
      expect(rest.code, rest.stderr).toBe(0);
      expect(rest.stdout).toMatch(new RegExp(`Restored ${40_000 - back} row\\(s\\)`));
      expect(await count(db.pool, 'SELECT count(*) AS n FROM caseguard.quarantine WHERE restored_at IS NULL')).toBe(0);
    } finally {
      await db.end();
    }
  });

  it('journal sequences set back (as a crash can leave them) do not fail the next run: ids continue above the highest', async () => {
    const db = await database();
    try {
      await seedInvalid(db.pool, 10);
      await seedOrphans(db.pool, 10);
      expect((await cli(db.url, 'recover', '--yes', '--quarantine')).code).toBe(0);
      await db.pool.query(`ALTER SEQUENCE caseguard.runs_run_id_seq RESTART WITH 1;
        ALTER SEQUENCE caseguard.run_items_item_id_seq RESTART WITH 1;
        ALTER SEQUENCE caseguard.quarantine_quarantine_id_seq RESTART WITH 1`);
      await db.pool.query("INSERT INTO mega_agent.case_intake_progress (user_id, case_id) VALUES ('bad-again', 'still-not-a-uuid')");
      await seedOrphans(db.pool, 3, 'later');
      const again = await cli(db.url, 'recover', '--yes', '--quarantine');
      expect(again.code, again.stderr).toBe(0);
      expect(again.stdout).toMatch(/Recovered: run 2,/);
      expect(await count(db.pool, 'SELECT count(DISTINCT quarantine_id) AS n FROM caseguard.quarantine')).toBe(11);
    } finally {
      await db.end();
    }
  });
});
