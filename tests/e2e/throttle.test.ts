/**
 * The throttle on a real cluster of this file's own: a primary and a streaming standby made
 * with pg_basebackup -R, lag made real by pg_wal_replay_pause() on the standby, and a physical
 * slot nobody reads. Runs pause between batches while a signal is over its limit and finish
 * once it is not; with the throttle off they do not pause; past --throttle-budget they stop
 * (exit 5) with nothing half-done.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrate } from '../../src/core/db/migrate.js';
import { BIN, runCli } from '../helpers/cli.js';
import { seedControls } from '../helpers/fixtures.js';
import { seedOrphans } from '../helpers/orphans.js';
import { startPrimaryAndStandby, type TestServer } from '../helpers/server.js';

let primary: TestServer;
let standby: TestServer;
let admin: pg.Pool;
let replica: pg.Pool;

beforeAll(async () => {
  ({ primary, standby } = await startPrimaryAndStandby(async () => undefined));
  admin = new pg.Pool({ connectionString: primary.url, max: 2 });
  replica = new pg.Pool({ connectionString: standby.url, max: 2 });
  // an idle connection the servers end (a terminated backend, the shutdown at the end) is no failure
  for (const p of [admin, replica]) p.on('error', () => undefined);
});
afterAll(async () => {
  await replica?.query('SELECT pg_wal_replay_resume()').catch(() => undefined);
  await replica?.end();
  await admin?.end();
  await standby?.stop();
  await primary?.stop();
});

async function database(): Promise<{ url: string; pool: pg.Pool }> {
  const name = `cg_throttle_${randomBytes(4).toString('hex')}`;
  await admin.query(`CREATE DATABASE ${name}`);
  const url = primary.url.replace(/\/postgres$/, `/${name}`);
  const pool = new pg.Pool({ connectionString: url, max: 3 });
  pool.on('error', () => undefined);
  await migrate(pool);
  return { url, pool };
}

/** Runs the binary; `on(stderr)` is called with everything it has logged so far, each time it logs. */
function run(
  args: string[],
  on: (stderr: string) => void = () => undefined,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, CI: '' } });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
  child.stderr.on('data', (c: Buffer) => {
    stderr += c.toString();
    on(stderr);
  });
  return new Promise((resolve) => child.on('close', (code) => resolve({ code, stdout, stderr })));
}

const events = (stderr: string, name: string) =>
  stderr
    .split('\n')
    .filter((l) => l.includes(`"event":"${name}"`))
    .map((l) => JSON.parse(l) as Record<string, unknown>);

/** Replay paused on the standby until the run says it paused, then resumed. */
function resumeOncePaused(): { on: (stderr: string) => void; done: () => Promise<void> } {
  let resumed: Promise<unknown> | undefined;
  return {
    on: (stderr) => {
      if (!resumed && stderr.includes('"throttle.paused"')) resumed = replica.query('SELECT pg_wal_replay_resume()');
    },
    done: async () => void (await resumed),
  };
}

describe('the throttle on a primary with a streaming standby', () => {
  it('recover pauses while the standby replays nothing, logs it, journals the time paused, and finishes once replay resumes', async () => {
    const db = await database();
    await seedControls(db.pool);
    await seedOrphans(db.pool, 20_000);
    await replica.query('SELECT pg_wal_replay_pause()');
    const watcher = resumeOncePaused();
    const r = await run(
      ['recover', '--yes', '--batch-size', '100', '--batch-pause', '10ms', '--max-replica-lag', '1s', '--database-url', db.url],
      watcher.on,
    );
    await watcher.done();
    expect(r.code, r.stderr).toBe(0);
    const paused = events(r.stderr, 'throttle.paused');
    expect(paused.length).toBeGreaterThan(0);
    expect(paused[0]).toMatchObject({ signal: 'replica_lag', limit: 1000 });
    expect(Number(paused[0]!.value)).toBeGreaterThan(1000);
    expect(paused[0]!.msg).toMatch(/^paused: replica lag \d+(\.\d)?s > 1s/);
    expect(events(r.stderr, 'throttle.resumed').length).toBe(paused.length);
    const journaled = (await db.pool.query("SELECT status, counts FROM caseguard.runs WHERE command = 'recover'")).rows[0];
    expect(journaled.status).toBe('completed');
    expect(journaled.counts.paused_ms).toBeGreaterThan(0);
    expect(journaled.counts.create_case).toBe(20_000);
    await db.pool.end();
  });

  it('fk add pauses its backfill the same way, and completes', async () => {
    const db = await database();
    await seedControls(db.pool);
    await db.pool.query(
      `INSERT INTO mega_agent.cases (case_id, user_id, title) SELECT gen_random_uuid(), 'bulk-' || g, 't' FROM generate_series(1, 20000) g`,
    );
    await db.pool.query(
      `INSERT INTO mega_agent.case_intake_progress (user_id, case_id) SELECT user_id, case_id::text FROM mega_agent.cases WHERE user_id LIKE 'bulk-%'`,
    );
    await replica.query('SELECT pg_wal_replay_pause()');
    const watcher = resumeOncePaused();
    const r = await run(
      [
        'fk',
        'add',
        '--yes',
        '--reference',
        'progress',
        '--batch-size',
        '100',
        '--batch-pause',
        '10ms',
        '--max-replica-lag',
        '1s',
        '--database-url',
        db.url,
      ],
      watcher.on,
    );
    await watcher.done();
    expect(r.code, r.stderr).toBe(0);
    expect(events(r.stderr, 'throttle.paused').length).toBeGreaterThan(0);
    expect(r.stdout).toMatch(/in place and validated: progress/);
    await db.pool.end();
  });

  it('with the throttle off, a run does not pause however far the standby falls behind', async () => {
    const db = await database();
    await seedOrphans(db.pool, 5_000);
    await replica.query('SELECT pg_wal_replay_pause()');
    try {
      const r = await run([
        'recover',
        '--yes',
        '--batch-size',
        '100',
        '--batch-pause',
        '10ms',
        '--max-replica-lag',
        '0',
        '--max-slot-lag',
        '0',
        '--database-url',
        db.url,
      ]);
      expect(r.code, r.stderr).toBe(0);
      expect(events(r.stderr, 'throttle.paused')).toEqual([]);
    } finally {
      await replica.query('SELECT pg_wal_replay_resume()');
    }
    await db.pool.end();
  });

  it('an inactive slot holding WAL pauses a run with --max-slot-lag; past --throttle-budget the run stops (exit 5), nothing half-done; a rerun finishes', async () => {
    const db = await database();
    await seedOrphans(db.pool, 20_000);
    await admin.query("SELECT pg_create_physical_replication_slot('cg_held', true)");
    try {
      const limited = await runCli(
        [
          'recover',
          '--yes',
          '--batch-size',
          '200',
          '--max-replica-lag',
          '0',
          '--max-slot-lag',
          '1MB',
          '--throttle-budget',
          '2s',
          '--database-url',
          db.url,
        ],
        { timeoutMs: 60_000 },
      );
      expect(limited.code, limited.stderr).toBe(5);
      expect(limited.stderr).toMatch(
        /caseguard: paused for \d+(\.\d)?s without a break \(--throttle-budget 2s\): slot cg_held \(inactive\) retains \d+MB > 1MB; nothing is half-done/,
      );
      expect(events(limited.stderr, 'throttle.paused')[0]).toMatchObject({ signal: 'slot_lag', source: 'cg_held' });
      const run1 = (await db.pool.query("SELECT run_id, status FROM caseguard.runs WHERE command = 'recover'")).rows[0];
      expect(run1.status).toBe('failed');
      // what it committed is whole and journaled: every case it made is in its items
      const journaled = await db.pool.query(
        "SELECT coalesce(sum(row_count), 0)::int AS n FROM caseguard.run_items WHERE run_id = $1 AND action = 'case_created'",
        [run1.run_id],
      );
      const made = await db.pool.query("SELECT count(*)::int AS n FROM mega_agent.cases WHERE metadata->>'run_id' = $1", [
        String(run1.run_id),
      ]);
      expect(made.rows[0].n).toBe(journaled.rows[0].n);
      expect(made.rows[0].n).toBeLessThan(20_000);
    } finally {
      await admin.query("SELECT pg_drop_replication_slot('cg_held')");
    }
    const rerun = await runCli(['recover', '--yes', '--max-slot-lag', '1MB', '--database-url', db.url]);
    expect(rerun.code, rerun.stderr).toBe(0);
    expect(
      (await db.pool.query("SELECT count(*)::int AS n FROM mega_agent.cases WHERE title = 'Intake Session (Recovered)'")).rows[0].n,
    ).toBe(20_000);
    await db.pool.end();
  });

  it('a role without pg_monitor is told once and runs unthrottled; with --require-health it is refused (exit 3) and nothing changes', async () => {
    const db = await database();
    await seedOrphans(db.pool, 300);
    const role = `cg_writer_${randomBytes(3).toString('hex')}`;
    await db.pool.query(`CREATE ROLE ${role} LOGIN PASSWORD 'pw'`);
    await db.pool
      .query(`GRANT ALL ON SCHEMA mega_agent, caseguard TO ${role}; GRANT ALL ON ALL TABLES IN SCHEMA mega_agent, caseguard TO ${role};
      GRANT ALL ON ALL SEQUENCES IN SCHEMA mega_agent, caseguard TO ${role}`);
    const url = new URL(db.url);
    url.username = role;
    url.password = 'pw';
    try {
      const refused = await runCli(['recover', '--yes', '--require-health', '--database-url', url.toString()]);
      expect(refused.code, refused.stderr).toBe(3);
      expect(refused.stderr).toMatch(
        /--require-health: the database user cannot read the cluster's health signals.*pg_monitor.*nothing was changed/,
      );
      expect(
        (await db.pool.query("SELECT count(*)::int AS n FROM mega_agent.cases WHERE title = 'Intake Session (Recovered)'")).rows[0].n,
      ).toBe(0);
      const ran = await runCli(['recover', '--yes', '--batch-size', '100', '--database-url', url.toString()]);
      expect(ran.code, ran.stderr).toBe(0);
      expect(events(ran.stderr, 'throttle.no_health')).toHaveLength(1);
      expect(ran.stderr).not.toMatch(/pw@/);
    } finally {
      await db.pool.query(`DROP OWNED BY ${role}`);
      await db.pool.end();
      await admin.query(`DROP ROLE ${role}`);
    }
  });

  it('bad throttle input is exit 2 before connecting', async () => {
    for (const args of [
      ['--max-replica-lag', '-1s'],
      ['--max-slot-lag', '12XB'],
      ['--batch-pause', 'soon'],
      ['--throttle-budget', '0'],
    ]) {
      const r = await runCli(['recover', '--yes', ...args, '--database-url', 'postgres://nobody@127.0.0.1:1/none']);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stderr).not.toMatch(/cannot connect/);
    }
  });
});
