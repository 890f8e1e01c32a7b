/**
 * Bulk writes and a streaming standby, on a cluster of this section's own (the machine's
 * PostgreSQL binaries: a primary and a standby made with pg_basebackup -R): for recover and for
 * fk add --strategy online and rewrite, the WAL written per row changed and the standby's peak
 * replay lag, with the throttle off and on; and what the health query costs per batch.
 */
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import fs from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { fmt, timeIt } from './dataset.mjs';

const binDir = () => {
  const root = '/usr/lib/postgresql';
  const majors = existsSync(root) ? readdirSync(root).filter((d) => existsSync(path.join(root, d, 'bin', 'pg_basebackup'))) : [];
  if (majors.length === 0) throw new Error('no PostgreSQL with pg_basebackup under /usr/lib/postgresql (Debian package postgresql)');
  return path.join(root, majors.sort((a, b) => Number(b) - Number(a))[0], 'bin');
};
const port = () =>
  new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const p = s.address().port;
      s.close(() => resolve(p));
    });
  });
const asPostgres = () =>
  process.getuid?.() === 0
    ? { uid: Number(execFileSync('id', ['-u', 'postgres'])), gid: Number(execFileSync('id', ['-g', 'postgres'])) }
    : {};

async function ready(url) {
  for (let i = 0; i < 600; i++) {
    const c = new pg.Client({ connectionString: url });
    c.on('error', () => undefined);
    try {
      await c.connect();
      await c.end();
      return;
    } catch {
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  throw new Error(`no server at ${url}`);
}

async function server(bin, dataDir, conf) {
  const p = await port();
  const child = spawn(
    path.join(bin, 'postgres'),
    ['-D', dataDir, '-p', String(p), '-k', dataDir, '-c', 'listen_addresses=127.0.0.1', ...conf.flatMap((c) => ['-c', c])],
    {
      ...asPostgres(),
      stdio: 'ignore',
    },
  );
  const url = `postgres://postgres@127.0.0.1:${p}/postgres`;
  await ready(url);
  return { url, port: p, stop: () => new Promise((r) => (child.exitCode !== null ? r() : (child.once('exit', r), child.kill('SIGINT')))) };
}

async function cluster() {
  const bin = binDir();
  const user = asPostgres();
  const primaryDir = await fs.mkdtemp(path.join(os.tmpdir(), 'caseguard-bench-primary-'));
  const standbyDir = await fs.mkdtemp(path.join(os.tmpdir(), 'caseguard-bench-standby-'));
  for (const d of [primaryDir, standbyDir]) if (user.uid !== undefined) await fs.chown(d, user.uid, user.gid);
  execFileSync(path.join(bin, 'initdb'), ['-D', primaryDir, '-U', 'postgres', '--auth=trust', '--no-sync'], { ...user, stdio: 'ignore' });
  const primary = await server(bin, primaryDir, ['wal_level=replica', 'max_wal_senders=4', 'fsync=off', 'max_wal_size=4GB']);
  execFileSync(
    path.join(bin, 'pg_basebackup'),
    ['-D', standbyDir, '-R', '-X', 'stream', '--checkpoint=fast', '-h', '127.0.0.1', '-p', String(primary.port), '-U', 'postgres'],
    {
      ...user,
      stdio: 'ignore',
    },
  );
  const standby = await server(bin, standbyDir, ['fsync=off', 'hot_standby=on']);
  return {
    primary,
    standby,
    stop: async () => {
      await standby.stop();
      await primary.stop();
      await fs.rm(primaryDir, { recursive: true, force: true });
      await fs.rm(standbyDir, { recursive: true, force: true });
    },
  };
}

/** The standby's peak replay lag while fn runs, sampled every 100 ms on the primary (time, and bytes behind). */
async function withLagSampler(pool, fn) {
  let peakMs = 0;
  let peakBytes = 0;
  let running = true;
  const sampler = (async () => {
    while (running) {
      const r = await pool.query(
        `SELECT coalesce(max(extract(epoch FROM replay_lag) * 1000), 0) AS ms, coalesce(max(pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)), 0) AS bytes FROM pg_stat_replication`,
      );
      peakMs = Math.max(peakMs, Number(r.rows[0].ms));
      peakBytes = Math.max(peakBytes, Number(r.rows[0].bytes));
      await new Promise((res) => setTimeout(res, 100));
    }
  })();
  try {
    const value = await fn();
    return { value, peakMs, peakBytes };
  } finally {
    running = false;
    await sampler;
  }
}

async function walDuring(pool, fn) {
  const before = (await pool.query('SELECT pg_current_wal_lsn() AS l')).rows[0].l;
  const out = await fn();
  const bytes = Number((await pool.query('SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), $1) AS b', [before])).rows[0].b);
  return { ...out, walBytes: bytes };
}

async function seed(pool, rows, orphans) {
  await pool.query(
    'TRUNCATE mega_agent.cases, mega_agent.case_intake_progress, mega_agent.case_memory, mega_agent.bot_user_context, caseguard.run_items',
  );
  await pool.query(
    `INSERT INTO mega_agent.cases (case_id, user_id, title) SELECT gen_random_uuid(), 'user-' || g, 't' FROM generate_series(1, $1) g`,
    [rows - orphans],
  );
  await pool.query(
    `INSERT INTO mega_agent.case_intake_progress (user_id, case_id, current_block) SELECT user_id, case_id::text, 'contact' FROM mega_agent.cases`,
  );
  await pool.query(
    `INSERT INTO mega_agent.case_intake_progress (user_id, case_id, current_block) SELECT 'orphan-' || g, gen_random_uuid()::text, 'contact' FROM generate_series(1, $1) g`,
    [orphans],
  );
  await pool.query('VACUUM ANALYZE mega_agent.cases, mega_agent.case_intake_progress');
  await pool.query('CHECKPOINT');
}

export const replicasSection = {
  id: 'replicas',
  title: 'bulk writes and a streaming standby: WAL per row, peak replay lag, throttle off and on, the health query',
  async run({ rows, dist, log }) {
    const core = await import(dist('core/index.js'));
    const {
      planRecovery,
      applyRecovery,
      planFkAdd,
      applyFkAdd,
      planFkDrop,
      applyFkDrop,
      openDatabase,
      serverTarget,
      inspectDatabase,
      migrate,
      silentLogger,
      readHealth,
      DEFAULT_THROTTLE,
      DEFAULT_TIMING,
    } = core;
    const c = await cluster();
    const url = c.primary.url.replace(/\/postgres$/, '/bench');
    const admin = new pg.Client({ connectionString: c.primary.url });
    await admin.connect();
    await admin.query('CREATE DATABASE bench');
    await admin.end();
    const database = await openDatabase(serverTarget(url), { log: silentLogger, poolSize: 6 });
    const results = [];
    try {
      await migrate(database.pool);
      const n = Math.max(10_000, Math.round(rows / 4));
      const orphans = Math.round(n / 10);
      const off = { ...DEFAULT_THROTTLE, maxReplicaLagMs: 0, maxSlotLagBytes: 0 };
      const on = { ...DEFAULT_THROTTLE, maxReplicaLagMs: 1000 };
      for (const [name, throttle] of [
        ['off', off],
        ['on (--max-replica-lag 1s)', on],
      ]) {
        await seed(database.pool, n, orphans);
        const shape = await inspectDatabase(database.db);
        const r = await walDuring(database.pool, () =>
          withLagSampler(database.pool, () =>
            timeIt(async () =>
              applyRecovery(
                database,
                shape,
                await planRecovery(database, shape, { quarantine: false, batchSize: 1000, sampleLimit: 0 }, { preview: false }),
                { log: silentLogger, throttle },
              ),
            ),
          ),
        );
        results.push({
          work: `recover, ${orphans.toLocaleString('en')} orphans`,
          throttle: name,
          ms: r.value.ms,
          perRow: r.walBytes / orphans,
          peakMs: r.peakMs,
          peakBytes: r.peakBytes,
          batches: r.value.value.batches,
        });
        for (const strategy of ['online', 'rewrite']) {
          await seed(database.pool, n, 0);
          const fkShape = await inspectDatabase(database.db);
          const f = await walDuring(database.pool, () =>
            withLagSampler(database.pool, () =>
              timeIt(async () =>
                applyFkAdd(
                  database,
                  await planFkAdd(database, fkShape, { strategy, timing: DEFAULT_TIMING, batchSize: 5000, only: ['progress'] }),
                  { log: silentLogger, throttle },
                ),
              ),
            ),
          );
          results.push({
            work: `fk add --strategy ${strategy}, ${n.toLocaleString('en')} progress rows`,
            throttle: name,
            ms: f.value.ms,
            perRow: f.walBytes / n,
            peakMs: f.peakMs,
            peakBytes: f.peakBytes,
          });
          await applyFkDrop(database, await planFkDrop(database, { timing: DEFAULT_TIMING, revertType: true, only: ['progress'] }), {
            log: silentLogger,
          });
          await database.pool.query('DROP INDEX IF EXISTS mega_agent.case_intake_progress_case_id_idx');
        }
      }
      // the health query's cost against a recover batch's
      const samples = [];
      for (let i = 0; i < 50; i++) samples.push((await timeIt(() => readHealth(database.db))).ms);
      samples.sort((a, b) => a - b);
      const healthMs = samples[25];
      const rec = results.find((r) => r.work.startsWith('recover') && r.throttle.startsWith('on'));
      const share = (healthMs * rec.batches) / rec.ms;
      for (const r of results) {
        log(
          `${r.work}, throttle ${r.throttle}: ${fmt(r.ms)}, ${Math.round(r.perRow)} WAL bytes a row, standby peak lag ${fmt(r.peakMs)} / ${(r.peakBytes / 2 ** 20).toFixed(1)} MB`,
        );
      }
      log(
        `health query: ${healthMs.toFixed(2)} ms (median of 50); ${rec.batches} batches: ${(share * 100).toFixed(2)}% of the recover run (goal < 1%) ${share < 0.01 ? 'met' : 'MISSED'}`,
      );
      return {
        lines: [],
        markdown: [
          'A primary and a streaming standby on this machine (the throttle pauses little here: a local standby keeps up; the rows show the WAL each run writes and how far the standby fell behind).',
          '',
          '| work | throttle | time | WAL per row | standby peak replay lag | peak bytes behind |',
          '|---|---|---|---|---|---|',
          ...results.map(
            (r) =>
              `| ${r.work} | ${r.throttle} | ${fmt(r.ms)} | ${Math.round(r.perRow)} B | ${fmt(r.peakMs)} | ${(r.peakBytes / 2 ** 20).toFixed(1)} MB |`,
          ),
          '',
          `The health query read before every batch: **${healthMs.toFixed(2)} ms** (median of 50), ${(share * 100).toFixed(2)}% of the recover run's time over its ${rec.batches} batches (goal < 1%: ${share < 0.01 ? 'met' : 'missed'}).`,
        ],
      };
    } finally {
      await database.close();
      await c.stop();
    }
  },
};
