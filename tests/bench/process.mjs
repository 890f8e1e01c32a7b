/** Measurements of the built binary as a process: peak memory of scan --all, start-up time. */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import { fmt } from './dataset.mjs';

const BIN = fileURLToPath(new URL('../../bin/caseguard.js', import.meta.url));

/** Runs a command, draining stdout, and samples its peak resident set (VmHWM) from /proc. */
function peakRss(args, env) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'ignore'] });
    let bytes = 0;
    let peak = 0;
    child.stdout.on('data', (c) => (bytes += c.length));
    const sample = () => {
      try {
        const m = /VmHWM:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${child.pid}/status`, 'utf8'));
        if (m) peak = Math.max(peak, Number(m[1]) * 1024);
      } catch {
        /* the process is gone */
      }
    };
    const timer = setInterval(sample, 20);
    child.on('error', reject);
    child.on('exit', (code) => {
      clearInterval(timer);
      resolve({ code, peak, bytes });
    });
  });
}

function timeProcess(args) {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn(process.execPath, args, { stdio: 'ignore' });
    child.on('error', reject);
    child.on('exit', () => resolve(performance.now() - t0));
  });
}

async function medianOf(n, fn) {
  await fn();
  const times = [];
  for (let i = 0; i < n; i++) times.push(await fn());
  times.sort((a, b) => a - b);
  return times[Math.floor(n / 2)];
}

export const rssSection = {
  id: 'rss',
  title: 'peak memory of scan --all --format json',
  async run({ database, url, rows }) {
    const pool = database.pool;
    await pool.query('TRUNCATE mega_agent.cases, mega_agent.case_intake_progress, mega_agent.case_memory, mega_agent.bot_user_context');
    await pool.query(
      `INSERT INTO mega_agent.case_intake_progress (user_id, case_id, current_block) SELECT 'orphan-' || g, gen_random_uuid()::text, 'contact' FROM generate_series(1, $1) g`,
      [rows],
    );
    await pool.query('VACUUM ANALYZE mega_agent.case_intake_progress');
    const r = await peakRss([BIN, 'scan', '--all', '--format', 'json', '--database-url', url, '--log-level', 'error'], { CI: '' });
    if (r.code !== 1) throw new Error(`scan --all exited ${r.code}`);
    const mb = r.peak / 2 ** 20;
    return {
      lines: [
        `${rows} findings, ${(r.bytes / 2 ** 20).toFixed(0)} MB of JSON: peak RSS ${mb.toFixed(0)} MB (goal <= 200 MB) ${mb <= 200 ? 'met' : 'MISSED'}`,
      ],
      markdown: [
        '| findings | JSON written | peak RSS |',
        '|---|---|---|',
        `| ${rows.toLocaleString('en')} | ${(r.bytes / 2 ** 20).toFixed(0)} MB | **${mb.toFixed(0)} MB** (goal <= 200 MB: ${mb <= 200 ? 'met' : 'missed'}) |`,
      ],
    };
  },
};

export const startupSection = {
  id: 'startup',
  title: 'caseguard --help start time vs bare node',
  async run() {
    const bare = await medianOf(9, () => timeProcess(['-e', '']));
    const help = await medianOf(9, () => timeProcess([BIN, '--help']));
    return {
      lines: [`bare node: ${fmt(bare)}; caseguard --help: ${fmt(help)} (goal <= 200 ms) ${help <= 200 ? 'met' : 'MISSED'}`],
      markdown: [
        '| command | median of 9 |',
        '|---|---|',
        `| node -e '' | ${fmt(bare)} |`,
        `| caseguard --help | **${fmt(help)}** (goal <= 200 ms: ${help <= 200 ? 'met' : 'missed'}) |`,
      ],
    };
  },
};
