/**
 * A network that stops answering without closing the socket (a TCP proxy of the tests that
 * freezes: the fault, not a stand-in for a component): a run through it ends within its bound
 * (exit 3), a stop request on it ends the process (exit 130), a scan ends; nothing is lost, and
 * the next run, on a good path, settles the stranded run and converges.
 */
import { spawn } from 'node:child_process';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { BIN, runCli } from '../helpers/cli.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { seedControls } from '../helpers/fixtures.js';
import { seedOrphans } from '../helpers/orphans.js';
import { startProxy, type FreezingProxy } from '../helpers/proxy.js';

let t: TestDatabase;
let proxy: FreezingProxy;

beforeEach(async () => {
  t = await createTestDatabase();
  const u = new URL(t.url);
  proxy = await startProxy({ host: u.hostname, port: Number(u.port) });
});
afterEach(async () => {
  await proxy?.close();
  await t?.drop();
});

/** Runs the binary; `on` sees stderr as it grows and may act (freeze, signal). Resolves with the time from `mark()` to exit. */
function run(args: string[], on: (stderr: string, child: ReturnType<typeof spawn>, mark: () => void) => void) {
  const child = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, CI: '' } });
  let stdout = '';
  let stderr = '';
  let marked = 0;
  const mark = () => (marked ||= performance.now());
  child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
  child.stderr.on('data', (c: Buffer) => {
    stderr += c.toString();
    on(stderr, child, mark);
  });
  return new Promise<{ code: number | null; stdout: string; stderr: string; afterMarkMs: number }>((resolve) =>
    child.on('close', (code) => resolve({ code, stdout, stderr, afterMarkMs: marked ? performance.now() - marked : -1 })),
  );
}

const batches = (stderr: string) => stderr.match(/"recover.batch_committed"/g)?.length ?? 0;
const caseguardLines = (stderr: string) => stderr.split('\n').filter((l) => l.startsWith('caseguard:'));

/** After the stranded process's sockets close, the journal tells its run dead: journal and data agree, and a rerun converges. */
async function settlesAndConverges(total: number): Promise<void> {
  await proxy.close();
  for (let i = 0; i < 100; i++) {
    const left = await t.pool.query(
      "SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name LIKE 'caseguard recover%' AND datname = current_database()",
    );
    if (left.rows[0].n === 0) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  const stranded = (await t.pool.query("SELECT run_id FROM caseguard.runs WHERE command = 'recover' ORDER BY run_id LIMIT 1")).rows[0]
    .run_id as string;
  const journaled = await t.pool.query(
    "SELECT coalesce(sum(row_count), 0)::int AS n FROM caseguard.run_items WHERE run_id = $1 AND action = 'case_created'",
    [stranded],
  );
  const made = await t.pool.query("SELECT count(*)::int AS n FROM mega_agent.cases WHERE metadata->>'run_id' = $1", [String(stranded)]);
  expect(made.rows[0].n).toBe(journaled.rows[0].n);
  expect(made.rows[0].n).toBeGreaterThan(0);
  const rerun = await runCli(['recover', '--yes', '--database-url', t.url]);
  expect(rerun.code, rerun.stderr).toBe(0);
  const statuses = (await t.pool.query("SELECT status FROM caseguard.runs WHERE command = 'recover' ORDER BY run_id")).rows.map(
    (r) => r.status,
  );
  expect(statuses[0]).toMatch(/abandoned|failed|interrupted/);
  expect(statuses[1]).toBe('completed');
  expect((await runCli(['scan', '--database-url', t.url])).code).toBe(0);
  expect((await t.pool.query("SELECT count(*)::int AS n FROM mega_agent.cases WHERE title = 'Intake Session (Recovered)'")).rows[0].n).toBe(
    total,
  );
  expect((await t.pool.query("SELECT count(*)::int AS n FROM mega_agent.cases WHERE user_id LIKE 'control-%'")).rows[0].n).toBe(5);
}

describe('a network that stops answering', () => {
  it('recover through a path that freezes mid-run: exit 3 in one line within the network timeout; settled by the next run', async () => {
    await seedControls(t.pool);
    await seedOrphans(t.pool, 5_000);
    let frozen = false;
    const r = await run(
      ['recover', '--yes', '--batch-size', '50', '--batch-pause', '20ms', '--network-timeout', '6s', '--database-url', proxy.via(t.url)],
      (stderr, _child, mark) => {
        if (batches(stderr) >= 3 && !frozen) {
          frozen = true;
          proxy.freeze();
          mark();
        }
      },
    );
    expect(r.code, r.stderr).toBe(3);
    // the bound: the network timeout, then at most the final journal write's and closing's own bounds
    expect(r.afterMarkMs).toBeLessThan(6_000 + 10_000 + 6_000);
    const lines = caseguardLines(r.stderr);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/went silent.*recover run \d+ stopped before its next write; up to \d+ batch\(es\) had committed/);
    await settlesAndConverges(5_000);
  });

  it('SIGTERM while the path is frozen: exit 130 within the grace period and its bounds, never a hang; settled by the next run', async () => {
    await seedControls(t.pool);
    await seedOrphans(t.pool, 5_000);
    let frozen = false;
    const r = await run(
      [
        'recover',
        '--yes',
        '--batch-size',
        '50',
        '--batch-pause',
        '20ms',
        '--shutdown-grace',
        '2s',
        '--network-timeout',
        '10min',
        '--database-url',
        proxy.via(t.url),
      ],
      (stderr, child, mark) => {
        if (batches(stderr) >= 3 && !frozen) {
          frozen = true;
          proxy.freeze();
          mark();
          child.kill('SIGTERM');
        }
      },
    );
    expect(r.code, r.stderr).toBe(130);
    expect(r.afterMarkMs).toBeLessThan(2_000 + 3_000 + 10_000 + 6_000 + 3_000);
    expect(caseguardLines(r.stderr)).toHaveLength(1);
    await settlesAndConverges(5_000);
  });

  it('a scan whose path freezes mid-statement ends (exit 3) within its statement timeout and the network timeout', async () => {
    await seedControls(t.pool);
    await seedOrphans(t.pool, 200);
    // the scan's statement waits behind this lock; once it waits, the path freezes (the cancel the server sends never arrives)
    const holder = await t.pool.connect();
    await holder.query('BEGIN');
    await holder.query('LOCK TABLE mega_agent.cases IN ACCESS EXCLUSIVE MODE');
    try {
      const started = performance.now();
      const scan = runCli(['scan', '--statement-timeout', '3s', '--network-timeout', '3s', '--database-url', proxy.via(t.url)], {
        timeoutMs: 60_000,
      });
      for (let i = 0; ; i++) {
        const waiting = await t.pool.query(
          "SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name LIKE 'caseguard scan%' AND wait_event_type = 'Lock'",
        );
        if (waiting.rows[0].n > 0) break;
        if (i > 400) throw new Error('the scan never waited for the lock');
        await new Promise((r) => setTimeout(r, 25));
      }
      proxy.freeze();
      const r = await scan;
      expect(r.code, r.stderr).toBe(3);
      expect(performance.now() - started).toBeLessThan(3_000 + 3_000 + 6_000 + 5_000);
      expect(caseguardLines(r.stderr)).toEqual([expect.stringMatching(/the scan got no answer within 6s.*went silent/)]);
    } finally {
      await holder.query('ROLLBACK');
      holder.release();
    }
  });
});
