/**
 * Applies drizzle/ migrations under the run lock: drizzle's migrator takes none, and concurrent
 * migrates on a fresh database otherwise fail. Where nothing is pending no lock is taken, so a
 * command starting on the embedded database never waits behind a long recover.
 */
import { fileURLToPath } from 'node:url';
import { drizzle } from 'drizzle-orm/node-postgres';
import { migrate as drizzleMigrate } from 'drizzle-orm/node-postgres/migrator';
import { readMigrationFiles } from 'drizzle-orm/migrator';
import type pg from 'pg';
import type { Database } from './database.js';
import { assertUnblocked } from '../errors.js';
import { acquireRunLock, releaseRunLock, runBlockers, withClient, withRunLock, type AcquireOptions } from './locks.js';

/** The two migration sets: the application's contract tables, and caseguard's own schema. */
export type MigrationSet = 'contract' | 'journal';

const FOLDERS: Record<MigrationSet, string> = {
  contract: fileURLToPath(new URL('../../../drizzle/contract', import.meta.url)),
  journal: fileURLToPath(new URL('../../../drizzle/caseguard', import.meta.url)),
};

export interface MigrateResult {
  /** Migrations applied by this call, per set. */
  applied: Record<MigrationSet, number>;
  /** Migrations known, per set. */
  known: Record<MigrationSet, number>;
  /**
   * True when the contract tables were already there, created by the application rather than
   * by caseguard: they are left exactly as they are.
   */
  contractPresent: boolean;
}

/**
 * Applies what is pending, taking the run lock for it (waiting as long as it takes: for tests,
 * benchmarks and the embedded database, whose server caseguard started itself).
 */
export async function migrate(pool: pg.Pool, sets: MigrationSet[] = ['contract', 'journal']): Promise<MigrateResult> {
  if (!(await hasPending(pool, sets))) {
    const contractPresent = sets.includes('contract') && (await withClient(pool, contractByApplication));
    return { applied: { contract: 0, journal: 0 }, known: knownCounts(sets), contractPresent };
  }
  return withClient(pool, async (client) => {
    await acquireRunLock(client, { what: 'caseguard migrate', waitMs: 10 * 60_000 });
    try {
      return await applyMigrations(pool, sets, client);
    } finally {
      await releaseRunLock(client).catch(() => undefined);
    }
  });
}

/** migrate for a command: refuses a read-only server or a transaction pooler, waits boundedly. */
export async function migrateDatabase(database: Database, options: AcquireOptions): Promise<MigrateResult> {
  const sets: MigrationSet[] = ['contract', 'journal'];
  assertUnblocked({ blockers: await runBlockers(database, options.what) });
  return withRunLock(database, options, () => applyMigrations(database.pool, sets));
}

/**
 * Creates caseguard's own schema (journal, quarantine) where it is missing or behind; idempotent.
 * The caller holds the run lock.
 */
export async function ensureJournalSchema(pool: pg.Pool): Promise<void> {
  if (await hasPending(pool, ['journal'])) await applyMigrations(pool, ['journal']);
}

function knownCounts(sets: MigrationSet[]): Record<MigrationSet, number> {
  const known = { contract: 0, journal: 0 };
  for (const set of sets) known[set] = readMigrationFiles({ migrationsFolder: FOLDERS[set] }).length;
  return known;
}

/** Whether any set has a migration not yet applied (the contract counts only where caseguard made it). */
async function hasPending(pool: pg.Pool, sets: MigrationSet[]): Promise<boolean> {
  return withClient(pool, async (client) => {
    for (const set of sets) {
      const applied = await countApplied(client, `migrations_${set}`);
      if (set === 'contract' && (await contractByApplication(client))) continue;
      if (applied < readMigrationFiles({ migrationsFolder: FOLDERS[set] }).length) return true;
    }
    return false;
  });
}

/** Applies the sets; the caller holds the run lock (on `client`, or on a session of its own). */
async function applyMigrations(pool: pg.Pool, sets: MigrationSet[], lockClient?: pg.PoolClient): Promise<MigrateResult> {
  const applied = { contract: 0, journal: 0 };
  const known = { contract: 0, journal: 0 };
  let contractPresent = false;
  const body = async (client: pg.PoolClient) => {
    const db = drizzle({ client });
    for (const set of sets) {
      const migrationsTable = `migrations_${set}`;
      const files = readMigrationFiles({ migrationsFolder: FOLDERS[set] });
      known[set] = files.length;
      const before = await countApplied(client, migrationsTable);
      if (set === 'contract' && (await contractByApplication(client))) {
        contractPresent = true;
        continue;
      }
      await drizzleMigrate(db, { migrationsFolder: FOLDERS[set], migrationsSchema: 'caseguard', migrationsTable });
      applied[set] = (await countApplied(client, migrationsTable)) - before;
    }
  };
  if (lockClient) await body(lockClient);
  else await withClient(pool, body);
  return { applied, known, contractPresent };
}

/** The contract tables exist and caseguard did not make them: they are the application's. */
async function contractByApplication(client: pg.ClientBase): Promise<boolean> {
  return (await countApplied(client, 'migrations_contract')) === 0 && (await tableExists(client, 'mega_agent.cases'));
}

async function tableExists(client: pg.ClientBase, qualified: string): Promise<boolean> {
  const result = await client.query<{ t: string | null }>('SELECT to_regclass($1)::text AS t', [qualified]);
  return Boolean(result.rows[0]?.t);
}

async function countApplied(client: pg.ClientBase, table: string): Promise<number> {
  if (!(await tableExists(client, `caseguard.${table}`))) return 0;
  const result = await client.query<{ n: string }>(`SELECT count(*) AS n FROM caseguard.${client.escapeIdentifier(table)}`);
  return Number(result.rows[0]?.n ?? 0);
}
