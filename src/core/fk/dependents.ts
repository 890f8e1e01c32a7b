/**
 * What of the application's schema depends on a referencing column (progress.case_id, …), read from the
 * catalog before any step: indexes, constraints (the primary key with all its columns), views
 * and materialised views, triggers, policies, defaults, extended statistics, column grants and
 * comments. Each is either carried by a strategy or named in a refusal before anything changes:
 * the online swap drops the text column, and with it everything that depends on it.
 */
import { sql } from 'drizzle-orm';
import type { Executor } from '../db/database.js';
import { REFERENCES, type Reference, type Strategy } from './names.js';

export type DependentKind =
  'index' | 'constraint' | 'primary_key' | 'view' | 'trigger' | 'policy' | 'default' | 'statistics' | 'grant' | 'comment';

export interface Dependent {
  kind: DependentKind;
  name: string;
  /** Its definition as the catalog gives it (index, constraint, trigger, view, default). */
  definition: string;
  /** How each strategy carries it to the uuid column, or null where it cannot. */
  carried: Record<Strategy, string | null>;
  /**
   * A plain index (columns only, default operator classes, no expression, predicate, INCLUDE or
   * ordering options): the online strategy builds it again on the uuid column.
   */
  index?: { oid: number; unique: boolean; method: string; columns: string[] };
}

/** The name of the copy of an application's index that the online run builds on the shadow column. */
export const carriedIndexName = (d: Dependent): string => `caseguard_carry_${d.index!.oid}`;

/** caseguard's own scaffolding and results: never the application's. */
const OWN = new Set<string>(
  REFERENCES.flatMap((r) => [r.trigger, r.notNullCheck, r.index, r.fk, ...(r.uniqueIndex ? [r.uniqueIndex] : [])]),
);

interface Row {
  kind: DependentKind;
  name: string;
  definition: string | null;
  columns: string[] | null;
  extra: { oid: number; unique: boolean; method: string } | null;
}

export async function readDependents(db: Executor, ref: Reference): Promise<Dependent[]> {
  const result = await db.execute<Row & Record<string, unknown>>(sql`
    WITH t AS (SELECT ${ref.qualified}::regclass AS oid),
    col AS (SELECT a.attnum FROM pg_attribute a, t WHERE a.attrelid = t.oid AND a.attname = ${ref.column} AND NOT a.attisdropped),
    dep AS (
      SELECT DISTINCT d.classid, d.objid FROM pg_depend d, t, col
       WHERE d.refclassid = 'pg_class'::regclass AND d.refobjid = t.oid AND d.refobjsubid = col.attnum
    )
    SELECT 'index' AS kind, ic.relname::text AS name, pg_get_indexdef(ic.oid) AS definition,
           CASE WHEN i.indexprs IS NULL AND i.indpred IS NULL AND i.indnkeyatts = i.indnatts
                 AND NOT EXISTS (SELECT 1 FROM unnest(i.indoption::int2[]) o(v) WHERE o.v <> 0)
                 AND NOT EXISTS (SELECT 1 FROM unnest(i.indclass::oid[]) k(opc) JOIN pg_opclass oc ON oc.oid = k.opc WHERE NOT oc.opcdefault)
                THEN (SELECT array_agg(a.attname::text ORDER BY k.n) FROM unnest(i.indkey::int2[]) WITH ORDINALITY k(attnum, n)
                        JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum) END AS columns,
           jsonb_build_object('oid', ic.oid::bigint, 'unique', i.indisunique, 'method', am.amname) AS extra
      FROM dep JOIN pg_class ic ON dep.classid = 'pg_class'::regclass AND ic.oid = dep.objid AND ic.relkind IN ('i', 'I')
      JOIN pg_index i ON i.indexrelid = ic.oid JOIN pg_am am ON am.oid = ic.relam
     WHERE NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = ic.oid AND c.conrelid = (SELECT oid FROM t))
    UNION ALL
    SELECT CASE WHEN c.contype = 'p' THEN 'primary_key' ELSE 'constraint' END, c.conname::text, pg_get_constraintdef(c.oid),
           (SELECT array_agg(a.attname::text ORDER BY k.ord) FROM unnest(c.conkey) WITH ORDINALITY k(attnum, ord)
              JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.attnum), NULL::jsonb
      FROM dep JOIN pg_constraint c ON dep.classid = 'pg_constraint'::regclass AND c.oid = dep.objid
     -- PostgreSQL 18 keeps NOT NULL as a constraint (contype n): the swap sets NOT NULL itself
     WHERE c.contype <> 'n'
    UNION ALL
    SELECT DISTINCT 'view', v.oid::regclass::text, pg_get_viewdef(v.oid), NULL::text[], NULL::jsonb
      FROM dep JOIN pg_rewrite r ON dep.classid = 'pg_rewrite'::regclass AND r.oid = dep.objid
      JOIN pg_class v ON v.oid = r.ev_class, t
     WHERE v.oid <> t.oid
    UNION ALL
    SELECT 'trigger', g.tgname::text, pg_get_triggerdef(g.oid), NULL::text[], NULL::jsonb
      FROM dep JOIN pg_trigger g ON dep.classid = 'pg_trigger'::regclass AND g.oid = dep.objid
    UNION ALL
    SELECT 'policy', p.polname::text, pg_get_expr(p.polqual, p.polrelid), NULL::text[], NULL::jsonb
      FROM dep JOIN pg_policy p ON dep.classid = 'pg_policy'::regclass AND p.oid = dep.objid
    UNION ALL
    SELECT 'default', 'case_id default', pg_get_expr(d.adbin, d.adrelid), NULL::text[], NULL::jsonb
      FROM dep JOIN pg_attrdef d ON dep.classid = 'pg_attrdef'::regclass AND d.oid = dep.objid
    UNION ALL
    SELECT 'statistics', s.stxname::text, NULL::text, NULL::text[], NULL::jsonb
      FROM dep JOIN pg_statistic_ext s ON dep.classid = 'pg_statistic_ext'::regclass AND s.oid = dep.objid
    UNION ALL
    SELECT 'grant', x.grantee::regrole::text, x.privilege_type, NULL::text[], NULL::jsonb
      FROM pg_attribute a, t, col, aclexplode(a.attacl) x
     WHERE a.attrelid = t.oid AND a.attnum = col.attnum AND a.attacl IS NOT NULL
    UNION ALL
    SELECT 'comment', 'comment on ' || ${ref.column}, d.description, NULL::text[], NULL::jsonb
      FROM pg_description d, t, col
     WHERE d.classoid = 'pg_class'::regclass AND d.objoid = t.oid AND d.objsubid = col.attnum
    ORDER BY 1, 2`);
  return result.rows
    .filter((r) => !OWN.has(r.name))
    .map((r) => ({
      kind: r.kind,
      name: r.name,
      definition: r.definition ?? '',
      carried: carriage(r, ref),
      ...(r.kind === 'index' && r.columns && r.extra
        ? { index: { oid: Number(r.extra.oid), unique: r.extra.unique, method: r.extra.method, columns: r.columns } }
        : {}),
    }));
}

/** How the online swap and the rewrite carry one dependent, or null where they cannot. */
function carriage(row: Row, ref: Reference): Record<Strategy, string | null> {
  switch (row.kind) {
    case 'primary_key': {
      const contract = ref.inPrimaryKey && row.columns?.length === 2 && row.columns[0] === 'user_id' && row.columns[1] === ref.column;
      return {
        online: contract ? 'attached again USING the unique index built concurrently on (user_id, uuid)' : null,
        rewrite: 'rebuilt by ALTER COLUMN TYPE with all its columns',
      };
    }
    case 'index':
      return {
        online: row.columns ? 'built again CONCURRENTLY on the uuid column before the swap, and given its name in the swap' : null,
        rewrite: 'rebuilt by ALTER COLUMN TYPE (where its definition holds for uuid)',
      };
    case 'constraint':
    case 'statistics':
      // rebuilt from its definition: one that only holds for text (length(case_id)) fails the
      // rewrite's transaction whole, and nothing changes
      return { online: null, rewrite: 'rebuilt by ALTER COLUMN TYPE (where its definition holds for uuid)' };
    case 'grant':
    case 'comment':
      return { online: 're-issued on the uuid column in the swap transaction', rewrite: 'kept by ALTER COLUMN TYPE' };
    case 'default':
      return { online: null, rewrite: 'kept by ALTER COLUMN TYPE when it casts to uuid' };
    default:
      // views, rules, triggers and policies on the column block ALTER COLUMN TYPE, and the swap drops them
      return { online: null, rewrite: null };
  }
}

/** The refusal for a strategy: what it cannot carry, and the way forward; undefined when it can carry all. */
export function dependentsRefusal(dependents: Dependent[], strategy: Strategy, ref: Reference): string | undefined {
  const blocked = dependents.filter((d) => d.carried[strategy] === null);
  if (blocked.length === 0) return undefined;
  const names = blocked.map((d) => `${d.kind.replace('_', ' ')} ${d.name}`).join(', ');
  const other: Strategy = strategy === 'online' ? 'rewrite' : 'online';
  const otherCan = dependents.every((d) => d.carried[other] !== null);
  const way = otherCan
    ? `--strategy ${other} carries them${other === 'rewrite' ? ' (one rewrite under ACCESS EXCLUSIVE: for tables small enough to wait for)' : ''}`
    : 'drop them, run caseguard fk add, then create them again on the uuid column (caseguard fk status --format json lists their definitions)';
  return `the ${strategy} strategy cannot carry what depends on ${ref.table}.${ref.column}: ${names}; nothing was changed; ${way}`;
}
