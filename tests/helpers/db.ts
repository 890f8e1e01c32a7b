/**
 * Per-file test databases: each test file clones the migrated template into a database of its
 * own, dropped afterwards.
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { inject } from 'vitest';
import { openDatabase, type Database } from '../../src/core/db/database.js';
import { serverTarget } from '../../src/core/db/connection.js';
import type { Logger } from '../../src/core/logger.js';
import { silentLogger } from '../../src/core/logger.js';
import { withDatabase } from './globalSetup.js';

export interface TestDatabase {
  name: string;
  url: string;
  database: Database;
  /** A plain pg pool on the same database, for fixtures and assertions. */
  pool: pg.Pool;
  drop(): Promise<void>;
}

export function adminUrl(): string {
  return inject('adminUrl');
}

/** A new database: a clone of the migrated template, or empty with { empty: true }. */
export async function createTestDatabase(
  options: { empty?: boolean; log?: Logger; poolSize?: number; pipeline?: boolean } = {},
): Promise<TestDatabase> {
  const name = `cg_test_${randomBytes(5).toString('hex')}`;
  const admin = new pg.Client({ connectionString: adminUrl() });
  await admin.connect();
  try {
    const template = options.empty ? '' : ` TEMPLATE ${admin.escapeIdentifier(inject('templateDb'))}`;
    await admin.query(`CREATE DATABASE ${admin.escapeIdentifier(name)}${template}`);
  } finally {
    await admin.end();
  }
  const url = withDatabase(adminUrl(), name);
  const database = await openDatabase(serverTarget(url), {
    log: options.log ?? silentLogger,
    poolSize: options.poolSize ?? 8,
    pipeline: options.pipeline,
  });
  const pool = new pg.Pool({ connectionString: url, max: 4, application_name: 'caseguard-tests' });
  // DROP DATABASE ... WITH (FORCE) at the end terminates whatever is still connected; an idle
  // client dying then is expected, not an unhandled error.
  pool.on('error', () => undefined);
  return {
    name,
    url,
    database,
    pool,
    drop: async () => {
      await database.close();
      await pool.end();
      const a = new pg.Client({ connectionString: adminUrl() });
      await a.connect();
      await a.query(`DROP DATABASE IF EXISTS ${a.escapeIdentifier(name)} WITH (FORCE)`);
      await a.end();
    },
  };
}

/**
 * Puts a database in the uuid shape: progress.case_id uuid with the validated foreign key, ON
 * DELETE CASCADE. (Until `caseguard fk add` exists, fixtures do it directly.)
 */
export async function toUuidShape(pool: pg.Pool): Promise<void> {
  await pool.query(`
    ALTER TABLE mega_agent.case_intake_progress ALTER COLUMN case_id TYPE uuid USING case_id::uuid;
    ALTER TABLE mega_agent.case_intake_progress
      ADD CONSTRAINT fk_case_intake_progress_case FOREIGN KEY (case_id)
      REFERENCES mega_agent.cases (case_id) ON DELETE CASCADE;
    CREATE INDEX IF NOT EXISTS case_intake_progress_case_id_idx ON mega_agent.case_intake_progress (case_id);`);
}

/** md5 of every row of a table, ordered: compare before and after to prove rows untouched. */
export async function tableChecksum(pool: pg.Pool, table: string, where = 'true'): Promise<string> {
  const result = await pool.query<{ sum: string | null }>(
    `SELECT md5(string_agg(t::text, '|' ORDER BY t::text)) AS sum FROM ${table} t WHERE ${where}`,
  );
  return result.rows[0]?.sum ?? 'empty';
}

/**
 * A login role with only CONNECT, USAGE on mega_agent and SELECT on its tables: a least-privilege
 * reader. Returns its URL and a drop() that revokes and removes it (roles are cluster-wide).
 */
export async function createReaderRole(
  t: TestDatabase,
  prefix = 'cg_reader',
): Promise<{ role: string; url: string; drop(): Promise<void> }> {
  const role = `${prefix}_${randomBytes(4).toString('hex')}`;
  const password = randomBytes(12).toString('hex');
  await t.pool.query(`CREATE ROLE ${role} LOGIN PASSWORD '${password}'`);
  await t.pool.query(
    `GRANT CONNECT ON DATABASE ${t.name} TO ${role}; GRANT USAGE ON SCHEMA mega_agent TO ${role}; GRANT SELECT ON ALL TABLES IN SCHEMA mega_agent TO ${role}`,
  );
  const url = new URL(t.url);
  url.username = role;
  url.password = password;
  return {
    role,
    url: url.toString(),
    drop: async () => {
      await t.pool
        .query(
          `REVOKE ALL ON ALL TABLES IN SCHEMA mega_agent FROM ${role}; REVOKE ALL ON SCHEMA mega_agent FROM ${role}; REVOKE ALL ON DATABASE ${t.name} FROM ${role}`,
        )
        .catch(() => undefined);
      const admin = new pg.Client({ connectionString: adminUrl() });
      await admin.connect();
      await admin.query(`DROP ROLE IF EXISTS ${role}`);
      await admin.end();
    },
  };
}
