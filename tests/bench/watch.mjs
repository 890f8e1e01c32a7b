/**
 * caseguard watch on the benchmark's dataset, with `caseguard simulate --legacy-rate 0.2` (a
 * process of its own) writing meanwhile: the delay from an orphan's commit to its detection
 * (p50, p99), watch's CPU per 1,000 row changes (this process runs nothing else meanwhile), its
 * counts against a full scan's at the end, and one exporter refresh fed by watch against one
 * fed by a full scan. Needs wal_level = logical (run.mjs sets it on the embedded server).
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { buildDataset, fmt, percentile } from './dataset.mjs';

const BIN = fileURLToPath(new URL('../../bin/caseguard.js', import.meta.url));

function simulateProcess(url, users, seconds) {
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      [
        BIN,
        'simulate',
        '--database-url',
        url,
        '--users',
        String(users),
        '--concurrency',
        '8',
        '--legacy-rate',
        '0.2',
        '--duration',
        `${seconds}s`,
        '--format',
        'json',
        '--quiet',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, CI: '' } },
    );
    let out = '';
    let err = '';
    child.stdout.on('data', (c) => (out += c));
    child.stderr.on('data', (c) => (err += c));
    child.on('close', (code) => (code === 0 ? resolve(JSON.parse(out)) : reject(new Error(`simulate exited ${code}: ${err}`))));
  });
}

export const watchSection = {
  id: 'watch',
  title: 'watch: detection delay under simulate load, CPU per 1,000 changes, a refresh fed by watch',
  async run({ database, url, rows, dist, log }) {
    const core = await import(dist('core/index.js'));
    const { silentLogger } = await import(dist('core/logger.js'));
    const pool = database.pool;
    // long enough to see the p99 at scale; short where the benchmark only must not rot
    const loadSeconds = rows < 100_000 ? 5 : 30;
    const walLevel = (await pool.query('SHOW wal_level')).rows[0].wal_level;
    if (walLevel !== 'logical') {
      const line = `not measured: wal_level is ${walLevel} on this server (watch needs logical)`;
      return { lines: [line], markdown: [line] };
    }
    const built = await buildDataset(pool, rows);
    log(`dataset: ${rows} cases, ${rows} progress rows, ${built.orphans} orphans${built.reused ? ' (reused)' : ''}`);
    const setup = await core.inspectWatch(database, { publication: 'caseguard_bench' });
    const controller = new AbortController();
    const detections = [];
    const applies = [];
    let changes = 0;
    const t0 = performance.now();
    const watcher = await core.startWatch(database, setup, {
      log: silentLogger,
      signal: controller.signal,
      maxSlotLagBytes: 2 ** 40,
      networkTimeoutMs: 60_000,
      statementTimeout: '30s',
      onApplied: (a) => {
        changes += a.changes;
        applies.push(a.delayMs);
        for (let i = 0; i < a.detected.length; i++) detections.push(a.delayMs);
      },
    });
    const startMs = performance.now() - t0;
    try {
      const cpu0 = process.cpuUsage();
      const changes0 = changes;
      const users = Math.max(500, Math.min(20_000, Math.floor(rows / 100)));
      await simulateProcess(url, users, loadSeconds);
      // what the load wrote, applied
      const scanned = async () =>
        core.scan(database.db, await core.inspectDatabase(database.db), {
          databaseName: 'bench',
          limit: 0,
          gate: { failOn: 'error', maxFindings: 0 },
        });
      let full;
      for (let i = 0; i < 50; i++) {
        full = await scanned();
        if (full.summary.missingCases === watcher.report('bench').summary.missingCases) break;
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
      const cpu = process.cpuUsage(cpu0);
      const applied = changes - changes0;
      const cpuPer1000 = ((cpu.user + cpu.system) / 1000 / applied) * 1000;
      const held = watcher.report('bench');
      const counts = (r) => JSON.stringify(r.checks.map((c) => [c.id, c.count]));
      if (counts(held) !== counts(full)) throw new Error(`bench: watch holds ${counts(held)}, a full scan finds ${counts(full)}`);

      // one exporter refresh fed by watch vs by a full scan, alternating, median of 3
      const options = { databaseName: 'bench', days: 14, abandonedAfterMs: 86_400_000, statementTimeout: '0' };
      const fed = [];
      const scanning = [];
      for (let i = 0; i < 4; i++) {
        let t = performance.now();
        await core.readSnapshot(database.db, { ...options, checks: () => watcher.report('bench') });
        if (i > 0) fed.push(performance.now() - t);
        t = performance.now();
        await core.readSnapshot(database.db, options);
        if (i > 0) scanning.push(performance.now() - t);
      }
      const mid = (v) => [...v].sort((a, b) => a - b)[1];
      const p50 = percentile(detections, 0.5);
      const p99 = percentile(detections, 0.99);
      const lines = [
        `start (slot, exported snapshot, first scan): ${fmt(startMs)}`,
        `under simulate (up to ${users} users, legacy rate 0.2, ${loadSeconds} s): ${detections.length} orphans detected, delay p50 ${fmt(p50)}, p99 ${fmt(p99)} (goal p99 < 1 s) ${p99 < 1000 ? 'met' : 'MISSED'}`,
        `apply delay of every batch: p50 ${fmt(percentile(applies, 0.5))}, p99 ${fmt(percentile(applies, 0.99))}; ${applied} row changes applied`,
        `watch CPU: ${cpuPer1000.toFixed(1)} ms per 1,000 row changes`,
        `exporter refresh fed by watch ${fmt(mid(fed))} vs by a full scan ${fmt(mid(scanning))}`,
      ];
      return {
        lines,
        numbers: {
          'watch detection delay p50': p50,
          'watch detection delay p99': p99,
          'watch CPU per 1,000 changes': cpuPer1000,
          'exporter refresh fed by watch': mid(fed),
          'exporter refresh with a full scan': mid(scanning),
        },
        markdown: [
          `${rows.toLocaleString('en')} cases and progress rows; \`caseguard simulate --legacy-rate 0.2 --concurrency 8\` for ${loadSeconds} s ` +
            "in a process of its own; delays from the commit (the server's commit time) to the findings applied; at the end watch's counts equal a full scan's.",
          '',
          '| measure | value |',
          '|---|---|',
          `| start: slot, exported snapshot, first scan | ${fmt(startMs)} |`,
          `| orphans detected under load | ${detections.length} |`,
          `| detection delay p50 / p99 | ${fmt(p50)} / **${fmt(p99)}** (goal p99 < 1 s: ${p99 < 1000 ? 'met' : 'missed'}) |`,
          `| apply delay of every batch p50 / p99 | ${fmt(percentile(applies, 0.5))} / ${fmt(percentile(applies, 0.99))} |`,
          `| watch CPU per 1,000 row changes (${applied.toLocaleString('en')} applied) | ${cpuPer1000.toFixed(1)} ms |`,
          `| one exporter refresh fed by watch (funnel and recoveries read) | **${fmt(mid(fed))}** |`,
          `| one exporter refresh with a full scan | ${fmt(mid(scanning))} |`,
        ],
      };
    } finally {
      controller.abort();
      await watcher.done.catch(() => undefined);
      await core.dropSlot(database, setup.slot);
    }
  },
};
