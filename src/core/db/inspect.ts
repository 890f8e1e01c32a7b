/**
 * What the database looks like: whether the contract tables are there, which shape the
 * progress table has (legacy text case_id, or uuid with the foreign key), and which optional
 * tables exist. Read from pg_catalog, which any role can read.
 */
import { getTableColumns, sql } from 'drizzle-orm';
import { botUserContext, caseIntakeProgress, caseMemory, cases } from '../schema/contract.js';
import { SchemaError } from '../errors.js';
import type { Executor } from './database.js';

/** legacy: progress.case_id is text, no FK. uuid: the column is uuid (with or without the FK). */
export type Shape = 'legacy' | 'uuid';

export interface DatabaseShape {
  shape: Shape;
  /** The FK from progress to cases, when present. */
  foreignKey?: { name: string; validated: boolean; onDeleteCascade: boolean };
  hasMemory: boolean;
  hasUserContext: boolean;
  /** case_memory.case_id is uuid (after fk add's memory reference), else text. */
  memoryUuid: boolean;
  /** bot_user_context.active_case_id is uuid (after fk add's active_case reference), else text. */
  pointerUuid: boolean;
  /** Whether the caseguard schema (journal, quarantine) exists. */
  hasJournal: boolean;
  /** server_version_num, for the SQL that differs by version. */
  serverVersionNum: number;
  /**
   * The validated foreign keys to cases.case_id, by referencing table: each proves its table's
   * orphan check (a NOT VALID one proves nothing).
   */
  proofs: { progress?: string; memory?: string; pointer?: string };
}

/** The columns of a contract table, as its Drizzle table object declares them (a rename there changes this check). */
const columnsOf = (table: Parameters<typeof getTableColumns>[0]): string[] => Object.values(getTableColumns(table)).map((c) => c.name);

export const REQUIRED_COLUMNS: Record<string, string[]> = {
  cases: columnsOf(cases),
  case_intake_progress: columnsOf(caseIntakeProgress),
};

/** Optional tables: absent is fine (their checks are skipped); present, they need every column caseguard reads. */
const OPTIONAL_COLUMNS: Record<string, string[]> = {
  case_memory: columnsOf(caseMemory),
  bot_user_context: columnsOf(botUserContext),
};

interface ColumnRow {
  table_name: string;
  column_name: string;
  type_name: string;
}

/** Inspects the database; throws SchemaError (exit 4) naming what is missing. */
export async function inspectDatabase(db: Executor): Promise<DatabaseShape> {
  const columns = await db.execute<ColumnRow & Record<string, unknown>>(sql`
    SELECT c.relname AS table_name, a.attname AS column_name, format_type(a.atttypid, NULL) AS type_name
      FROM pg_catalog.pg_class c
      JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
      JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
     WHERE n.nspname = 'mega_agent' AND c.relkind IN ('r', 'p')
       AND c.relname IN ('cases', 'case_intake_progress', 'case_memory', 'bot_user_context')`);
  const byTable = new Map<string, Map<string, string>>();
  for (const row of columns.rows) {
    const table = byTable.get(row.table_name) ?? new Map<string, string>();
    table.set(row.column_name, row.type_name);
    byTable.set(row.table_name, table);
  }
  const missing: string[] = [];
  for (const [table, required] of Object.entries({ ...REQUIRED_COLUMNS, ...OPTIONAL_COLUMNS })) {
    const present = byTable.get(table);
    if (!present) {
      if (table in REQUIRED_COLUMNS) missing.push(`table mega_agent.${table}`);
      continue;
    }
    for (const column of required) if (!present.has(column)) missing.push(`column mega_agent.${table}.${column}`);
  }
  const progressType = byTable.get('case_intake_progress')?.get('case_id');
  const casesType = byTable.get('cases')?.get('case_id');
  if (casesType && casesType !== 'uuid') missing.push(`mega_agent.cases.case_id as uuid (it is ${casesType})`);
  for (const [table, column] of [
    ['case_intake_progress', 'case_id'],
    ['case_memory', 'case_id'],
    ['bot_user_context', 'active_case_id'],
  ] as const) {
    const type = byTable.get(table)?.get(column);
    if (type && type !== 'text' && type !== 'uuid') missing.push(`mega_agent.${table}.${column} as text or uuid (it is ${type})`);
  }
  if (missing.length > 0) {
    throw new SchemaError(
      `the database is not in the expected shape; missing: ${missing.join(', ')}. ` +
        'Point caseguard at the intake database, or run `caseguard migrate` on a local or test database',
      missing,
    );
  }
  const hasOptional = (table: string) => byTable.has(table);

  const fk = await db.execute<{ conname: string; convalidated: boolean; confdeltype: string } & Record<string, unknown>>(sql`
    SELECT con.conname, con.convalidated, con.confdeltype
      FROM pg_catalog.pg_constraint con
     WHERE con.contype = 'f'
       AND con.conrelid = 'mega_agent.case_intake_progress'::regclass
       AND con.confrelid = 'mega_agent.cases'::regclass
     ORDER BY con.convalidated DESC, con.conname
     LIMIT 1`);
  const journal = await db.execute<{ present: boolean; version: string } & Record<string, unknown>>(
    // pg_catalog, not to_regclass: a role without USAGE on schema caseguard may still scan.
    sql`SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
                        WHERE n.nspname = 'caseguard' AND c.relname = 'runs') AS present,
               current_setting('server_version_num') AS version`,
  );
  const proven = await db.execute<{ table_name: string; conname: string } & Record<string, unknown>>(sql`
    SELECT cl.relname AS table_name, con.conname
      FROM pg_catalog.pg_constraint con
      JOIN pg_catalog.pg_class cl ON cl.oid = con.conrelid
      JOIN pg_catalog.pg_namespace n ON n.oid = cl.relnamespace AND n.nspname = 'mega_agent'
      JOIN pg_catalog.pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = con.conkey[1]
      JOIN pg_catalog.pg_attribute r ON r.attrelid = con.confrelid AND r.attnum = con.confkey[1]
     WHERE con.contype = 'f' AND con.convalidated AND cardinality(con.conkey) = 1
       AND con.confrelid = 'mega_agent.cases'::regclass AND r.attname = 'case_id'
       AND (cl.relname, a.attname) IN (('case_intake_progress', 'case_id'), ('case_memory', 'case_id'), ('bot_user_context', 'active_case_id'))
     ORDER BY con.conname`);
  const proofOf = (table: string) => proven.rows.find((r) => r.table_name === table)?.conname;
  const fkRow = fk.rows[0];
  return {
    shape: progressType === 'uuid' ? 'uuid' : 'legacy',
    foreignKey: fkRow ? { name: fkRow.conname, validated: fkRow.convalidated, onDeleteCascade: fkRow.confdeltype === 'c' } : undefined,
    hasMemory: hasOptional('case_memory'),
    hasUserContext: hasOptional('bot_user_context'),
    memoryUuid: byTable.get('case_memory')?.get('case_id') === 'uuid',
    pointerUuid: byTable.get('bot_user_context')?.get('active_case_id') === 'uuid',
    hasJournal: Boolean(journal.rows[0]?.present),
    serverVersionNum: Number(journal.rows[0]?.version),
    proofs: { progress: proofOf('case_intake_progress'), memory: proofOf('case_memory'), pointer: proofOf('bot_user_context') },
  };
}
