/**
 * The SQL of the checks. A scan costs about what the seed's bare text anti-join costs: one
 * anti-join per source table finds the candidates (rows with no case of the same text id, and
 * for progress the same owner), and only those few are classified with uuid semantics (the
 * server's uuid check, cast, index lookup). Casting every row to uuid instead costs 4-8x.
 *
 * Every query yields finding rows with the same columns:
 *   check_id, source_table, user_id, case_id (as stored), canonical_id (uuid text or NULL),
 *   owner (the case's user, where known), memory_id (case_memory only), detail.
 */
import { sql, type SQL } from 'drizzle-orm';
import type { Shape } from '../db/inspect.js';
import { uuidOrNull } from '../uuid.js';
import { MISSING_CASE_CHECKS } from './checks.js';

export interface ScanFilters {
  /** Only this user's rows. */
  userId?: string;
  /** Only rows updated (progress, pointers) or created (memory) since then. */
  since?: Date;
}

export interface Sources {
  shape: Shape;
  serverVersionNum: number;
  memory: boolean;
  pointers: boolean;
}

function where(filters: ScanFilters, alias: string, timeColumn: string): SQL {
  const parts: SQL[] = [sql`true`];
  if (filters.userId !== undefined) parts.push(sql`${sql.raw(alias)}.user_id = ${filters.userId}`);
  if (filters.since !== undefined) parts.push(sql`${sql.raw(`${alias}.${timeColumn}`)} >= ${filters.since.toISOString()}::timestamptz`);
  return sql.join(parts, sql` AND `);
}

/**
 * Findings on case_intake_progress: five checks from one anti-join. The candidates are the rows
 * with no case of the same text id and the same owner; each is then classified by index lookups
 * (scalar subqueries, so the planner cannot turn them into a full hash join for the few).
 */
export function progressFindings(shape: Shape, serverVersionNum: number, filters: ScanFilters): SQL {
  // In the uuid shape the column is uuid: compare it directly; spelling checks cannot fire.
  const uuidShape = shape === 'uuid';
  const sameCase = uuidShape ? sql`c.case_id = cip.case_id` : sql`c.case_id::text = cip.case_id`;
  const caseText = uuidShape ? sql`cip.case_id::text` : sql`cip.case_id`;
  const asUuid = uuidShape ? sql`j.case_id::uuid` : uuidOrNull(sql`j.case_id`, serverVersionNum);
  const duplicates = uuidShape
    ? sql`SELECT NULL::text AS user_id, NULL::uuid AS id, NULL::text AS case_id, 0::bigint AS n WHERE false`
    : sql`
      SELECT d.user_id, d.id, d.case_id, count(*) OVER (PARTITION BY d.user_id, d.id) AS n
        FROM (
          SELECT user_id, id, case_id FROM cls WHERE id IS NOT NULL
          UNION
          -- only a non-canonical candidate can have a healthy twin: look it up by primary key
          SELECT user_id, id, canonical FROM (
            SELECT cls.user_id, cls.id,
                   (SELECT p.case_id FROM mega_agent.case_intake_progress p
                     WHERE p.user_id = cls.user_id AND p.case_id = cls.id::text) AS canonical
              FROM cls WHERE cls.id IS NOT NULL AND cls.case_id <> cls.id::text) twin
           WHERE canonical IS NOT NULL
        ) d`;
  return sql`
    WITH k AS MATERIALIZED (
      SELECT j.user_id, j.case_id, ${asUuid} AS id
        FROM (SELECT cip.user_id, ${caseText} AS case_id
                FROM mega_agent.case_intake_progress cip
               WHERE NOT EXISTS (SELECT 1 FROM mega_agent.cases c WHERE ${sameCase} AND c.user_id = cip.user_id)
                 AND ${where(filters, 'cip', 'updated_at')}) j
    ),
    cls AS MATERIALIZED (
      SELECT k.user_id, k.case_id, k.id, k.id IS NULL AS invalid,
             (SELECT c.user_id FROM mega_agent.cases c WHERE c.case_id = k.id) AS owner
        FROM k
    ),
    dup AS (${duplicates})
    SELECT 'invalid_case_id' AS check_id, 'case_intake_progress' AS source_table, user_id, case_id,
           NULL::text AS canonical_id, NULL::text AS owner, NULL::bigint AS memory_id, 'not a uuid' AS detail
      FROM cls WHERE invalid
    UNION ALL
    SELECT 'orphaned_progress', 'case_intake_progress', user_id, case_id, id::text, NULL, NULL, 'no case with this id'
      FROM cls WHERE id IS NOT NULL AND owner IS NULL
    UNION ALL
    SELECT 'noncanonical_case_id', 'case_intake_progress', user_id, case_id, id::text, owner, NULL, 'spelling of an existing case id'
      FROM cls WHERE owner IS NOT NULL AND case_id <> id::text
    UNION ALL
    SELECT 'owner_mismatch', 'case_intake_progress', user_id, case_id, id::text, owner, NULL, 'the case belongs to another user'
      FROM cls WHERE owner IS NOT NULL AND owner <> user_id
    UNION ALL
    SELECT 'duplicate_progress', 'case_intake_progress', user_id, case_id, id::text, NULL, NULL,
           n || ' rows of this user name this uuid'
      FROM dup WHERE n > 1`;
}

/** Findings on case_memory: orphaned (invalid ids included) and non-canonical spellings. */
export function memoryFindings(serverVersionNum: number, filters: ScanFilters): SQL {
  return referenceFindings('case_memory', 'orphaned_memory', serverVersionNum, filters);
}

/** Findings on bot_user_context: dangling pointers (invalid ids included) and spellings. */
export function pointerFindings(serverVersionNum: number, filters: ScanFilters): SQL {
  return referenceFindings('bot_user_context', 'dangling_active_case', serverVersionNum, filters);
}

function referenceFindings(table: 'case_memory' | 'bot_user_context', missingCheck: string, serverVersionNum: number, filters: ScanFilters): SQL {
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
      SELECT t.*, ${uuidOrNull(sql`t.case_id`, serverVersionNum)} AS id FROM t
    ),
    cls AS (
      SELECT o.*, o.owner IS NOT NULL AS found
        FROM (SELECT k.*, (SELECT c.user_id FROM mega_agent.cases c WHERE c.case_id = k.id) AS owner FROM k) o
    )
    SELECT CASE WHEN found THEN 'noncanonical_case_id' ELSE ${missingCheck} END AS check_id,
           ${table}::text AS source_table, user_id, case_id, id::text AS canonical_id, owner, memory_id,
           CASE WHEN found THEN 'spelling of an existing case id' WHEN id IS NULL THEN 'not a uuid' ELSE 'no case with this id' END AS detail
      FROM cls`;
}

/** All findings of the sources present, as one query. */
export function allFindings(sources: Sources, filters: ScanFilters): SQL {
  const parts = [sql`(${progressFindings(sources.shape, sources.serverVersionNum, filters)})`];
  if (sources.memory) parts.push(sql`(${memoryFindings(sources.serverVersionNum, filters)})`);
  if (sources.pointers) parts.push(sql`(${pointerFindings(sources.serverVersionNum, filters)})`);
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
      SELECT f.*, row_number() OVER (PARTITION BY check_id ORDER BY user_id COLLATE "C", case_id COLLATE "C", memory_id) AS rn FROM f
    )
    SELECT check_id, count(*)::bigint AS count, count(DISTINCT canonical_id::uuid)::bigint AS distinct_cases,
           COALESCE(jsonb_agg(jsonb_build_object(
             'table', source_table, 'user_id', user_id, 'case_id', case_id, 'canonical_id', canonical_id,
             'owner', owner, 'memory_id', memory_id, 'detail', detail) ORDER BY rn) FILTER (WHERE rn <= ${limit}), '[]'::jsonb) AS samples
      FROM r GROUP BY check_id
    UNION ALL
    SELECT '', count(DISTINCT canonical_id::uuid) FILTER (WHERE check_id IN (${missing})), 0, '[]'::jsonb FROM f`;
}
