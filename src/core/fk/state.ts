/**
 * Where one reference's foreign-key migration stands, read from pg_catalog: the column type, the
 * online migration's scaffolding (shadow column, sync trigger, NOT NULL check, unique index), the
 * supporting index and the constraint itself. Every step of `fk add` is skipped when this says
 * it is done, so a rerun after any failure resumes.
 */
import { sql } from 'drizzle-orm';
import type { Executor } from '../db/database.js';
import { readDependents, type Dependent } from './dependents.js';
import { PROGRESS, REFERENCES, type Reference, type ReferenceId } from './names.js';

export interface FkState {
  reference: Reference;
  /** The column's type: text before, uuid after. */
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
  /** A valid index whose first column is the reference's column (what cascading deletes need). */
  caseIdIndex?: { name: string; valid: boolean };
  foreignKey?: { name: string; validated: boolean };
  /** The planner's row estimate; null when the table was never analysed. */
  rows: number | null;
  /** The table is partitioned (declarative partitioning). */
  partitioned: boolean;
  /** The column's 1-based position among the table's columns. */
  columnPosition: number;
  /** What of the application's schema depends on the column (see dependents.ts). */
  dependents: Dependent[];
  /** The copies of the application's indexes built on the shadow column, by name: valid or not. */
  carriedIndexes: Record<string, boolean>;
}

/** The state of one reference; undefined when its (optional) table is absent. */
export async function readFkState(db: Executor, ref: Reference = PROGRESS): Promise<FkState | undefined> {
  const present = await db.execute<{ oid: string | null }>(sql`SELECT to_regclass(${ref.qualified})::oid::text AS oid`);
  if (!present.rows[0]?.oid) return undefined;
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
    WITH t AS (SELECT ${ref.qualified}::regclass AS oid),
    col AS (SELECT a.attnum FROM pg_attribute a, t WHERE a.attrelid = t.oid AND a.attname = ${ref.column} AND NOT a.attisdropped),
    idx AS (SELECT ic.relname, i.indisvalid FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid, t, col
             WHERE i.indrelid = t.oid AND i.indkey[0] = col.attnum ORDER BY i.indisvalid DESC LIMIT 1),
    fk AS (SELECT c.conname, c.convalidated FROM pg_constraint c, t, col
            WHERE c.conrelid = t.oid AND c.contype = 'f' AND c.confrelid = 'mega_agent.cases'::regclass AND c.conkey = ARRAY[col.attnum]
            ORDER BY c.convalidated DESC LIMIT 1)
    SELECT
      (SELECT format_type(a.atttypid, NULL) FROM pg_attribute a, t, col WHERE a.attrelid = t.oid AND a.attnum = col.attnum) AS column_type,
      EXISTS (SELECT 1 FROM pg_attribute a, t WHERE a.attrelid = t.oid AND a.attname = ${ref.shadow} AND NOT a.attisdropped) AS has_shadow,
      EXISTS (SELECT 1 FROM pg_trigger g, t WHERE g.tgrelid = t.oid AND g.tgname = ${ref.trigger}) AS has_trigger,
      EXISTS (SELECT 1 FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
               WHERE n.nspname = 'caseguard' AND p.proname = ${ref.fn.replace(/^caseguard\./, '')}) AS has_function,
      (SELECT c.convalidated FROM pg_constraint c, t WHERE c.conrelid = t.oid AND c.conname = ${ref.notNullCheck}) AS not_null_check,
      (SELECT i.indisvalid FROM pg_class ic JOIN pg_index i ON i.indexrelid = ic.oid, t
        WHERE i.indrelid = t.oid AND ic.relname = ${ref.uniqueIndex ?? ''}) AS unique_index,
      (SELECT c.conname FROM pg_constraint c, t WHERE c.conrelid = t.oid AND c.contype = 'p') AS pk_name,
      (SELECT array_agg(a.attname::text ORDER BY k.ord) FROM pg_constraint c, t,
              unnest(c.conkey) WITH ORDINALITY k(attnum, ord)
              JOIN pg_attribute a ON a.attnum = k.attnum
        WHERE c.conrelid = t.oid AND c.contype = 'p' AND a.attrelid = t.oid) AS pk_columns,
      (SELECT relname FROM idx) AS case_index_name,
      (SELECT indisvalid FROM idx) AS case_index_valid,
      (SELECT conname FROM fk) AS fk_name,
      (SELECT convalidated FROM fk) AS fk_validated,
      (SELECT c.relkind = 'p' FROM pg_class c, t WHERE c.oid = t.oid) AS partitioned,
      (SELECT count(*)::int FROM pg_attribute a, t, col WHERE a.attrelid = t.oid AND a.attnum > 0 AND NOT a.attisdropped AND a.attnum <= col.attnum) AS column_position,
      -- reltuples is -1 (14+) or 0 with pages on disk (13) for a table never analysed: unknown then
      (SELECT CASE WHEN c.reltuples < 0 OR (c.reltuples = 0 AND pg_relation_size(c.oid) > 0) THEN NULL ELSE c.reltuples::bigint END
         FROM pg_class c, t WHERE c.oid = t.oid) AS rows`);
  const row = r.rows[0]!;
  return {
    reference: ref,
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
    dependents: await readDependents(db, ref),
    carriedIndexes: await readCarriedIndexes(db, ref),
  };
}

async function readCarriedIndexes(db: Executor, ref: Reference): Promise<Record<string, boolean>> {
  const r = await db.execute<{ relname: string; indisvalid: boolean }>(sql`
    SELECT ic.relname, i.indisvalid FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid
     WHERE i.indrelid = ${ref.qualified}::regclass AND ic.relname LIKE 'caseguard_carry_%'`);
  return Object.fromEntries(r.rows.map((row) => [row.relname, row.indisvalid]));
}

/** The references a command works on: the ones asked for (default all), in the order they are added. */
export function selectReferences(only?: ReferenceId[]): Reference[] {
  return REFERENCES.filter((r) => !only || only.length === 0 || only.includes(r.id));
}

/** Each reference's state; undefined where its optional table is absent. */
export async function readStates(db: Executor, refs: readonly Reference[]): Promise<Array<{ reference: Reference; state?: FkState }>> {
  const states = [];
  for (const reference of refs) states.push({ reference, state: await readFkState(db, reference) });
  return states;
}

/** The states of the references asked for whose tables exist. */
export async function presentStates(db: Executor, only?: ReferenceId[]): Promise<FkState[]> {
  return (await readStates(db, selectReferences(only))).flatMap((s) => (s.state ? [s.state] : []));
}
