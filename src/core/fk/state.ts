/**
 * Where the foreign-key migration stands, read from pg_catalog: the column type, the online
 * migration's scaffolding (shadow column, sync trigger, NOT NULL check, unique index), the
 * supporting index and the constraint itself. Every step of `fk add` is skipped when this says
 * it is done, so a rerun after any failure resumes.
 */
import { sql } from 'drizzle-orm';
import pg from 'pg';
import type { Executor } from '../db/database.js';
import { readDependents, type Dependent } from './dependents.js';
import { NAMES } from './names.js';

export { NAMES } from './names.js';

/** A name read from the catalog, quoted for the DDL it goes into (mixed case, spaces, quotes). */
export const quoted = (name: string): string => pg.escapeIdentifier(name);

export interface FkState {
  columnType: string;
  hasShadow: boolean;
  hasTrigger: boolean;
  /** The sync trigger's function (caseguard schema). */
  hasFunction: boolean;
  /** undefined: absent; false: NOT VALID; true: validated. */
  notNullCheck?: boolean;
  /** undefined: absent; false: invalid (a failed CONCURRENTLY build); true: valid. */
  uniqueIndex?: boolean;
  primaryKey?: { name: string; columns: string[] };
  /** A valid index whose first column is case_id (what cascading deletes need). */
  caseIdIndex?: { name: string; valid: boolean };
  foreignKey?: { name: string; validated: boolean };
  /** The planner's row estimate; null when the table was never analysed. */
  rows: number | null;
  /** The progress table is partitioned (declarative partitioning). */
  partitioned: boolean;
  /** case_id's 1-based position among the table's columns. */
  columnPosition: number;
  /** What of the application's schema depends on case_id (see dependents.ts). */
  dependents: Dependent[];
}

export async function readFkState(db: Executor): Promise<FkState> {
  const r = await db.execute<{
    column_type: string;
    has_shadow: boolean;
    has_trigger: boolean;
    has_function: boolean;
    not_null_check: boolean | null;
    unique_index: boolean | null;
    pk_name: string | null;
    pk_columns: string[] | null;
    case_index_name: string | null;
    case_index_valid: boolean | null;
    fk_name: string | null;
    fk_validated: boolean | null;
    rows: string | null;
    partitioned: boolean;
    column_position: number;
  }>(sql`
    WITH t AS (SELECT ${NAMES.table}::regclass AS oid)
    SELECT
      (SELECT format_type(a.atttypid, NULL) FROM pg_attribute a, t WHERE a.attrelid = t.oid AND a.attname = 'case_id' AND NOT a.attisdropped) AS column_type,
      EXISTS (SELECT 1 FROM pg_attribute a, t WHERE a.attrelid = t.oid AND a.attname = ${NAMES.shadow} AND NOT a.attisdropped) AS has_shadow,
      EXISTS (SELECT 1 FROM pg_trigger g, t WHERE g.tgrelid = t.oid AND g.tgname = ${NAMES.trigger}) AS has_trigger,
      EXISTS (SELECT 1 FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
               WHERE n.nspname = 'caseguard' AND p.proname = 'case_intake_progress_sync_case_id') AS has_function,
      (SELECT c.convalidated FROM pg_constraint c, t WHERE c.conrelid = t.oid AND c.conname = ${NAMES.notNullCheck}) AS not_null_check,
      (SELECT i.indisvalid FROM pg_class ic JOIN pg_index i ON i.indexrelid = ic.oid, t
        WHERE i.indrelid = t.oid AND ic.relname = ${NAMES.uniqueIndex}) AS unique_index,
      (SELECT c.conname FROM pg_constraint c, t WHERE c.conrelid = t.oid AND c.contype = 'p') AS pk_name,
      (SELECT array_agg(a.attname::text ORDER BY k.ord) FROM pg_constraint c, t,
              unnest(c.conkey) WITH ORDINALITY k(attnum, ord)
              JOIN pg_attribute a ON a.attnum = k.attnum
        WHERE c.conrelid = t.oid AND c.contype = 'p' AND a.attrelid = t.oid) AS pk_columns,
      (SELECT ic.relname FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid
              JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0], t
        WHERE i.indrelid = t.oid AND a.attname = 'case_id' ORDER BY i.indisvalid DESC LIMIT 1) AS case_index_name,
      (SELECT i.indisvalid FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0], t
        WHERE i.indrelid = t.oid AND a.attname = 'case_id' ORDER BY i.indisvalid DESC LIMIT 1) AS case_index_valid,
      (SELECT c.conname FROM pg_constraint c, t WHERE c.conrelid = t.oid AND c.contype = 'f'
          AND c.confrelid = 'mega_agent.cases'::regclass ORDER BY c.convalidated DESC LIMIT 1) AS fk_name,
      (SELECT c.convalidated FROM pg_constraint c, t WHERE c.conrelid = t.oid AND c.contype = 'f'
          AND c.confrelid = 'mega_agent.cases'::regclass ORDER BY c.convalidated DESC LIMIT 1) AS fk_validated,
      (SELECT c.relkind = 'p' FROM pg_class c, t WHERE c.oid = t.oid) AS partitioned,
      (SELECT count(*)::int FROM pg_attribute a, t WHERE a.attrelid = t.oid AND a.attnum > 0 AND NOT a.attisdropped
          AND a.attnum <= (SELECT b.attnum FROM pg_attribute b WHERE b.attrelid = t.oid AND b.attname = 'case_id')) AS column_position,
      -- reltuples is -1 (14+) or 0 with pages on disk (13) for a table never analysed: unknown then
      (SELECT CASE WHEN c.reltuples < 0 OR (c.reltuples = 0 AND pg_relation_size(c.oid) > 0) THEN NULL ELSE c.reltuples::bigint END
         FROM pg_class c, t WHERE c.oid = t.oid) AS rows`);
  const row = r.rows[0]!;
  return {
    columnType: row.column_type,
    hasShadow: row.has_shadow,
    hasTrigger: row.has_trigger,
    hasFunction: row.has_function,
    notNullCheck: row.not_null_check ?? undefined,
    uniqueIndex: row.unique_index ?? undefined,
    primaryKey: row.pk_name ? { name: row.pk_name, columns: row.pk_columns ?? [] } : undefined,
    caseIdIndex: row.case_index_name ? { name: row.case_index_name, valid: Boolean(row.case_index_valid) } : undefined,
    foreignKey: row.fk_name ? { name: row.fk_name, validated: Boolean(row.fk_validated) } : undefined,
    rows: row.rows === null ? null : Number(row.rows),
    partitioned: row.partitioned,
    columnPosition: row.column_position,
    dependents: await readDependents(db),
  };
}
