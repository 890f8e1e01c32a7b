#!/usr/bin/env node
/**
 * caseguard's benchmark (`npm run bench`; not part of `npm test`). Builds its own dataset on
 * the embedded server (or BENCH_DATABASE_URL), measures each operation against its baseline in
 * the same run, prints the ratios, and writes tests/bench/RESULTS.md.
 *
 *   node tests/bench/run.mjs [--scale tiny|full|N] [--no-write] [--only scan,recover]
 *
 * Speed is measured here, never asserted in tests: machines are noisy; ratios in one run are not.
 */
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { sections } from './sections.mjs';

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
const rows = values.scale === 'tiny' ? 10_000 : values.scale === 'full' ? 1_000_000 : Number(values.scale);
if (!Number.isInteger(rows) || rows < 1000) {
  console.error('--scale must be tiny, full or a whole number of at least 1000');
  process.exit(2);
}

let embedded;
let adminUrl = process.env.BENCH_DATABASE_URL;
if (!adminUrl) {
  const dataDir = path.join(here, '.data');
  await fs.mkdir(dataDir, { recursive: true });
  embedded = await acquireEmbedded(dataDir, silentLogger);
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
  const only = values.only?.split(',');
  for (const section of sections) {
    if (only && !only.includes(section.id)) continue;
    console.log(`\n== ${section.title}`);
    const result = await section.run(context);
    results.push({ ...result, id: section.id, title: section.title });
    console.log(result.lines.join('\n'));
  }
  if (!values['no-write']) {
    const md = [
      '# caseguard benchmark results',
      '',
      `- date: ${new Date().toISOString()}`,
      `- machine: ${os.cpus()[0]?.model ?? 'unknown'} × ${os.cpus().length}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, ${os.platform()} ${os.release()}`,
      `- PostgreSQL ${version} (${process.env.BENCH_DATABASE_URL ? 'BENCH_DATABASE_URL' : 'embedded'}), Node ${process.version}`,
      `- scale: ${rows.toLocaleString('en')} rows`,
      '',
      ...results.flatMap((r) => [`## ${r.title}`, '', ...r.markdown, '']),
    ].join('\n');
    await fs.writeFile(path.join(here, 'RESULTS.md'), md);
    console.log('\nwrote tests/bench/RESULTS.md');
  }
} finally {
  await database.close();
  await admin.query(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`);
  await admin.end();
  await embedded?.release();
}
