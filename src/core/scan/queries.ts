/**
 * The SQL of the checks. A scan costs about what the seed's bare text anti-join costs: one
 * hash join per source table finds the candidates (rows whose case_id does not match a case by
 * text, plus matched rows of another owner), and only those few are classified with uuid
 * semantics (regex guard, cast, index lookup). Casting every row to uuid instead costs 4-8x.
 *
 * Every query yields finding rows with the same columns:
 *   check_id, source_table, user_id, case_id (as stored), canonical_id (uuid text or NULL),
 *   owner (the case's user, where known), memory_id (case_memory only), detail.
 */
import { sql, type SQL } from 'drizzle-orm';
import type { Shape } from '../db/inspect.js';
import { UUID_SPELLING_SQL } from '../uuid.js';
import { MISSING_CASE_CHECKS } from './checks.js';

export interface ScanFilters {
  /** Only this user's rows. */
  userId?: string;
  /** Only rows updated (progress, pointers) or created (memory) since then. */
  since?: Date;
}

export interface Sources {
  shape: Shape;
  memory: boolean;
  pointers: boolean;
}

function where(filters: ScanFilters, alias: string, timeColumn: string): SQL {
  const parts: SQL[] = [sql`true`];
  if (filters.userId !== undefined) parts.push(sql`${sql.raw(alias)}.user_id = ${filters.userId}`);
  if (filters.since !== undefined) parts.push(sql`${sql.raw(`${alias}.${timeColumn}`)} >= ${filters.since.toISOString()}::timestamptz`);
  return sql.join(parts, sql` AND `);
}

/** Findings on case_intake_progress: five checks from one join. */
export function progressFindings(shape: Shape, filters: ScanFilters): SQL {
  const re = UUID_SPELLING_SQL;
  // In the uuid shape the column is uuid: join on it directly; spelling checks cannot fire.
  const join = shape === 'uuid' ? sql`c.case_id = cip.case_id` : sql`c.case_id::text = cip.case_id`;
  const caseText = shape === 'uuid' ? sql`cip.case_id::text` : sql`cip.case_id`;
  const selfJoin = shape === 'uuid' ? sql`p.case_id = cls.id` : sql`p.case_id = cls.id::text`;
  return sql`
    WITH j AS MATERIALIZED (
      SELECT cip.user_id, ${caseText} AS case_id, c.user_id AS owner
        FROM mega_agent.case_intake_progress cip
        LEFT JOIN mega_agent.cases c ON ${join}
       WHERE (c.case_id IS NULL OR c.user_id IS DISTINCT FROM cip.user_id) AND ${where(filters, 'cip', 'updated_at')}
    ),
    k AS MATERIALIZED (
      SELECT j.user_id, j.case_id, j.owner,
             CASE WHEN j.owner IS NULL AND j.case_id ~* ${re} THEN j.case_id::uuid END AS id,
             (j.owner IS NULL AND j.case_id !~* ${re}) AS invalid,
             j.owner IS NOT NULL AS matched
        FROM j
    ),
    cls AS MATERIALIZED (
      SELECT k.user_id, k.case_id, k.invalid, k.id, k.matched,
             COALESCE(k.owner, c2.user_id) AS owner,
             (k.matched OR c2.case_id IS NOT NULL) AS found
        FROM k LEFT JOIN mega_agent.cases c2 ON c2.case_id = k.id
    ),
    dup AS (
      SELECT user_id, id, case_id FROM cls WHERE id IS NOT NULL
      UNION
      SELECT p.user_id, cls.id, p.case_id::text
        FROM cls JOIN mega_agent.case_intake_progress p ON p.user_id = cls.user_id AND ${selfJoin}
       WHERE cls.id IS NOT NULL
    ),
    dup_groups AS (
      SELECT user_id, id, count(*) AS n FROM dup GROUP BY user_id, id HAVING count(*) > 1
    )
    SELECT 'invalid_case_id' AS check_id, 'case_intake_progress' AS source_table, user_id, case_id,
           NULL::text AS canonical_id, NULL::text AS owner, NULL::bigint AS memory_id, 'not a uuid' AS detail
      FROM cls WHERE invalid
    UNION ALL
    SELECT 'orphaned_progress', 'case_intake_progress', user_id, case_id, id::text, NULL, NULL, 'no case with this id'
      FROM cls WHERE id IS NOT NULL AND NOT found
    UNION ALL
    SELECT 'noncanonical_case_id', 'case_intake_progress', user_id, case_id, id::text, owner, NULL, 'spelling of an existing case id'
      FROM cls WHERE id IS NOT NULL AND found
    UNION ALL
    SELECT 'owner_mismatch', 'case_intake_progress', user_id, case_id, COALESCE(id::text, case_id), owner, NULL,
           'the case belongs to another user'
      FROM cls WHERE found AND owner IS DISTINCT FROM user_id
    UNION ALL
    SELECT 'duplicate_progress', 'case_intake_progress', d.user_id, d.case_id, d.id::text, NULL, NULL,
           g.n || ' rows of this user name this uuid'
      FROM dup d JOIN dup_groups g ON g.user_id = d.user_id AND g.id = d.id`;
}

/** Findings on case_memory: orphaned (invalid ids included) and non-canonical spellings. */
export function memoryFindings(filters: ScanFilters): SQL {
  return referenceFindings('case_memory', 'orphaned_memory', filters);
}

/** Findings on bot_user_context: dangling pointers (invalid ids included) and spellings. */
export function pointerFindings(filters: ScanFilters): SQL {
  return referenceFindings('bot_user_context', 'dangling_active_case', filters);
}

function referenceFindings(table: 'case_memory' | 'bot_user_context', missingCheck: string, filters: ScanFilters): SQL {
  const re = UUID_SPELLING_SQL;
  const memory = table === 'case_memory';
  const column = sql.raw(memory ? 'case_id' : 'active_case_id');
  const key = memory ? sql`t.memory_id` : sql`NULL::bigint`;
  return sql`
    WITH t AS MATERIALIZED (
      SELECT ${key} AS memory_id, t.user_id, t.${column} AS case_id
        FROM mega_agent.${sql.raw(table)} t
       WHERE t.${column} IS NOT NULL
         AND NOT EXISTS (SELECT 1 FROM mega_agent.cases c WHERE c.case_id::text = t.${column})
         AND ${where(filters, 't', memory ? 'created_at' : 'updated_at')}
    ),
    k AS MATERIALIZED (
      SELECT t.*, CASE WHEN t.case_id ~* ${re} THEN t.case_id::uuid END AS id FROM t
    ),
    cls AS (
      SELECT k.*, c.user_id AS owner, c.case_id IS NOT NULL AS found
        FROM k LEFT JOIN mega_agent.cases c ON c.case_id = k.id
    )
    SELECT CASE WHEN found THEN 'noncanonical_case_id' ELSE ${missingCheck} END AS check_id,
           ${table}::text AS source_table, user_id, case_id, id::text AS canonical_id, owner, memory_id,
           CASE WHEN found THEN 'spelling of an existing case id' WHEN id IS NULL THEN 'not a uuid' ELSE 'no case with this id' END AS detail
      FROM cls`;
}

/** All findings of the sources present, as one query. */
export function allFindings(sources: Sources, filters: ScanFilters): SQL {
  const parts = [sql`(${progressFindings(sources.shape, filters)})`];
  if (sources.memory) parts.push(sql`(${memoryFindings(filters)})`);
  if (sources.pointers) parts.push(sql`(${pointerFindings(filters)})`);
  return sql.join(parts, sql` UNION ALL `);
}

/**
 * Per check: the count, the distinct uuids, and the first `limit` findings in a stable order;
 * plus one row '' carrying missingCases, the distinct uuids without a case over all sources.
 */
export function summarise(findings: SQL, limit: number): SQL {
  const missing = sql.raw(MISSING_CASE_CHECKS.map((c) => `'${c}'`).join(', '));
  return sql`
    WITH f AS MATERIALIZED (${findings}),
    r AS (
      SELECT f.*, row_number() OVER (PARTITION BY check_id ORDER BY user_id, case_id, memory_id) AS rn FROM f
    )
    SELECT check_id, count(*)::bigint AS count, count(DISTINCT canonical_id)::bigint AS distinct_cases,
           COALESCE(jsonb_agg(jsonb_build_object(
             'table', source_table, 'user_id', user_id, 'case_id', case_id, 'canonical_id', canonical_id,
             'owner', owner, 'memory_id', memory_id, 'detail', detail) ORDER BY rn) FILTER (WHERE rn <= ${limit}), '[]'::jsonb) AS samples
      FROM r GROUP BY check_id
    UNION ALL
    SELECT '', count(DISTINCT canonical_id) FILTER (WHERE check_id IN (${missing})), 0, '[]'::jsonb FROM f`;
}
