#!/usr/bin/env node
/**
 * caseguard's benchmark (`npm run bench`; not part of `npm test`). Builds its own dataset on
 * the embedded server (or BENCH_DATABASE_URL), measures each operation against its baseline in
 * the same run, prints the ratios, and writes tests/bench/RESULTS.md (RESULTS-10M.md at 10M rows).
 *
 *   node tests/bench/run.mjs [--scale tiny|full|1m|10m|N] [--no-write] [--only scan,recover]
 *
 * Each run also writes tests/bench/results/<rows>.json (its numbers), and RESULTS.md ends with
 * how each number grew from 1M to 10M rows once both have been measured. --scale 10m runs the
 * sections measured at that scale (sections.mjs) unless --only names others.
 *
 * Speed is measured here, never asserted in tests: machines are noisy; ratios in one run are not.
 */
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { LARGE_SCALE_SECTIONS, sections } from './sections.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const dist = (p) => new URL(`../../dist/${p}`, import.meta.url).href;
const { acquireEmbedded } = await import(dist('core/db/embedded.js'));
const { openDatabase } = await import(dist('core/db/database.js'));
const { serverTarget } = await import(dist('core/db/connection.js'));
const { migrate } = await import(dist('core/db/migrate.js'));
const { silentLogger } = await import(dist('core/logger.js'));

const { values } = parseArgs({
  options: {
    scale: { type: 'string', default: 'full' },
    'no-write': { type: 'boolean', default: false },
    only: { type: 'string' },
  },
});
const SCALES = { tiny: 10_000, full: 1_000_000, '1m': 1_000_000, '10m': 10_000_000 };
const rows = SCALES[values.scale] ?? Number(values.scale);
if (!Number.isInteger(rows) || rows < 1000) {
  console.error('--scale must be tiny, full, 1m, 10m or a whole number of at least 1000');
  process.exit(2);
}

/** How each number grew from 1M to 10M rows, from the two runs' results/*.json. */
async function growth(dir) {
  const read = async (n) => JSON.parse(await fs.readFile(path.join(dir, `${n}.json`), 'utf8').catch(() => 'null'));
  const [small, large] = [await read(1_000_000), await read(10_000_000)];
  if (!small || !large) return [];
  const names = Object.keys(large.numbers).filter((k) => k in small.numbers);
  const show = (k, v) => (/CPU/.test(k) ? `${v.toFixed(1)} ms` : v >= 1000 ? `${(v / 1000).toFixed(2)} s` : `${v.toFixed(0)} ms`);
  return [
    GROWTH,
    '',
    `1M: ${small.date.slice(0, 10)}, PostgreSQL ${small.version}; 10M: ${large.date.slice(0, 10)}, PostgreSQL ${large.version}. ` +
      'Ten times the rows: a number that grows about 10x follows the table; one that stays flat follows the changes.',
    '',
    '| measure | 1M rows | 10M rows | growth |',
    '|---|---|---|---|',
    ...names.map(
      (k) =>
        `| ${k} | ${show(k, small.numbers[k])} | ${show(k, large.numbers[k])} | ${(large.numbers[k] / small.numbers[k]).toFixed(1)}x |`,
    ),
    '',
  ];
}

const GROWTH = '## From 1M to 10M rows';

/**
 * Writes what this run measured: results/<rows>.json (merged with the numbers of earlier runs at
 * that scale) and RESULTS.md (1M rows; RESULTS-10M.md at 10M, RESULTS-<rows>.md otherwise), where each section this run
 * measured replaces the one of the same title (each carries its own date) and the others stay.
 * RESULTS.md then ends with the growth from 1M to 10M, once both have been measured.
 */
async function writeResults(results, version) {
  const date = new Date().toISOString();
  const resultsDir = path.join(here, 'results');
  await fs.mkdir(resultsDir, { recursive: true });
  const jsonFile = path.join(resultsDir, `${rows}.json`);
  const earlier = JSON.parse(await fs.readFile(jsonFile, 'utf8').catch(() => '{"numbers":{}}'));
  const numbers = Object.assign(earlier.numbers, ...results.map((r) => r.numbers ?? {}));
  await fs.writeFile(jsonFile, `${JSON.stringify({ date, version, rows, numbers }, null, 2)}\n`);

  const file = path.join(here, rows === 1_000_000 ? 'RESULTS.md' : rows === 10_000_000 ? 'RESULTS-10M.md' : `RESULTS-${rows}.md`);
  const old = (await fs.readFile(file, 'utf8').catch(() => '')).split(`\n${GROWTH}`)[0];
  // a file from before sections carried their dates has one date for all of them
  const oldDate = /^- date: (\S+)/m.exec(old)?.[1];
  const dated = (b) => {
    const [title, ...rest] = b.trimEnd().split('\n');
    return rest.some((l) => l.startsWith('_measured ')) || !oldDate
      ? `## ${b.trimEnd()}`
      : [`## ${title}`, '', `_measured ${oldDate.slice(0, 16).replace('T', ' ')} UTC_`, ...rest].join('\n');
  };
  const blocks = new Map(
    old
      .split(/^## /m)
      .slice(1)
      .map((b) => [b.slice(0, b.indexOf('\n')), dated(b)]),
  );
  for (const r of results)
    blocks.set(r.title, [`## ${r.title}`, '', `_measured ${date.slice(0, 16).replace('T', ' ')} UTC_`, '', ...r.markdown].join('\n'));
  const md = [
    '# caseguard benchmark results',
    '',
    `- machine: ${os.cpus()[0]?.model ?? 'unknown'} × ${os.cpus().length}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, ${os.platform()} ${os.release()}`,
    `- PostgreSQL ${version} (${process.env.BENCH_DATABASE_URL ? 'BENCH_DATABASE_URL' : 'embedded'}), Node ${process.version}`,
    `- scale: ${rows.toLocaleString('en')} rows; each section says when it was measured (\`--only\` reruns some)`,
    '',
    ...[...blocks.values()].flatMap((b) => [b, '']),
  ];
  const grown = await growth(resultsDir);
  if (file.endsWith('RESULTS.md') && grown.length > 0) md.push(...grown);
  await fs.writeFile(file, `${md.join('\n').trimEnd()}\n`);
  // a 10M run adds the growth to RESULTS.md
  const main = path.join(here, 'RESULTS.md');
  const kept = (await fs.readFile(main, 'utf8').catch(() => '')).split(`\n${GROWTH}`)[0].trimEnd();
  if (!file.endsWith('RESULTS.md') && kept && grown.length > 0) await fs.writeFile(main, `${kept}\n\n${grown.join('\n').trimEnd()}\n`);
  console.log(`\nwrote ${path.relative(process.cwd(), file)}`);
}

let embedded;
let adminUrl = process.env.BENCH_DATABASE_URL;
if (!adminUrl) {
  const dataDir = path.join(here, '.data');
  await fs.mkdir(dataDir, { recursive: true });
  embedded = await acquireEmbedded(dataDir, silentLogger);
  // the watch section reads a logical replication slot: the benchmark's own server gets
  // wal_level = logical (a restart), as a DBA would set it
  const probe = new pg.Client({ connectionString: embedded.url });
  await probe.connect();
  const level = (await probe.query('SHOW wal_level')).rows[0].wal_level;
  if (level !== 'logical') await probe.query('ALTER SYSTEM SET wal_level = logical');
  await probe.end();
  if (level !== 'logical') {
    await embedded.release();
    embedded = await acquireEmbedded(dataDir, silentLogger);
  }
  adminUrl = embedded.url;
}
const dbName = `caseguard_bench_${process.pid}`;
const admin = new pg.Client({ connectionString: adminUrl });
await admin.connect();
await admin.query(`CREATE DATABASE ${dbName}`);
const url = new URL(adminUrl);
url.pathname = `/${dbName}`;
const database = await openDatabase(serverTarget(url.toString()), { log: silentLogger, poolSize: 20 });
const results = [];
try {
  await migrate(database.pool);
  const version = (await database.pool.query('SHOW server_version')).rows[0].server_version;
  const context = { database, url: url.toString(), rows, dist, log: (line) => console.log(line) };
  console.log(`caseguard bench: ${rows.toLocaleString('en')} rows, PostgreSQL ${version}, ${os.cpus().length} cores`);
  const only = values.only?.split(',') ?? (rows >= 10_000_000 ? LARGE_SCALE_SECTIONS : undefined);
  for (const section of sections) {
    if (only && !only.includes(section.id)) continue;
    console.log(`\n== ${section.title}`);
    const result = await section.run(context);
    results.push({ ...result, id: section.id, title: section.title });
    console.log(result.lines.join('\n'));
  }
  if (!values['no-write']) await writeResults(results, version);
} finally {
  await database.close();
  await admin.query(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`);
  await admin.end();
  await embedded?.release();
}
