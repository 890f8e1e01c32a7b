/**
 * Applies drizzle/ migrations under an advisory lock: drizzle's migrator takes none, and
 * concurrent migrates on a fresh database otherwise fail.
 */
import { fileURLToPath } from 'node:url';
import { drizzle } from 'drizzle-orm/node-postgres';
import { migrate as drizzleMigrate } from 'drizzle-orm/node-postgres/migrator';
import { readMigrationFiles } from 'drizzle-orm/migrator';
import type pg from 'pg';
import { LockKey, withAdvisoryLock, withClient } from './locks.js';

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

export async function migrate(pool: pg.Pool, sets: MigrationSet[] = ['contract', 'journal']): Promise<MigrateResult> {
  const applied = { contract: 0, journal: 0 };
  const known = { contract: 0, journal: 0 };
  let contractPresent = false;
  await withClient(pool, (client) =>
    withAdvisoryLock(client, LockKey.migrate, async () => {
      const db = drizzle({ client });
      for (const set of sets) {
        const migrationsTable = `migrations_${set}`;
        const files = readMigrationFiles({ migrationsFolder: FOLDERS[set] });
        known[set] = files.length;
        const before = await countApplied(client, migrationsTable);
        if (set === 'contract' && before === 0 && (await tableExists(client, 'mega_agent.cases'))) {
          contractPresent = true;
          continue;
        }
        await drizzleMigrate(db, { migrationsFolder: FOLDERS[set], migrationsSchema: 'caseguard', migrationsTable });
        applied[set] = (await countApplied(client, migrationsTable)) - before;
      }
    }),
  );
  return { applied, known, contractPresent };
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

/** Creates caseguard's own schema (journal, quarantine) where it is missing; idempotent. */
export async function ensureJournalSchema(pool: pg.Pool): Promise<void> {
  await migrate(pool, ['journal']);
}
