/**
 * The SQL of the checks. A scan costs about what the seed's bare text anti-join costs: one
 * anti-join against cases, over every source table at once, finds the candidates (rows with no
 * case of the same text id, and for progress the same owner), and only those few are classified
 * with uuid semantics (the server's uuid check, cast, index lookup). Casting every row to uuid
 * instead costs 4-8x.
 *
 * The findings query yields rows with these columns:
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
  /**
   * With since: deletions are recorded for the whole window (deletion tracking), so the rows
   * naming a case deleted since then are read as well, whenever they last changed.
   */
  deletionsTracked?: boolean;
}

export interface Sources {
  shape: Shape;
  serverVersionNum: number;
  /** Read case_memory (present, and no validated foreign key proves it already). */
  memory: boolean;
  memoryUuid?: boolean;
  /** Read bot_user_context (present, and not proven). */
  pointers: boolean;
  pointerUuid?: boolean;
}

function where(filters: ScanFilters, alias: string, timeColumn: string): SQL {
  const parts: SQL[] = [sql`true`];
  if (filters.userId !== undefined) parts.push(sql`${sql.identifier(alias)}.user_id = ${filters.userId}`);
  if (filters.since !== undefined)
    parts.push(sql`${sql.identifier(alias)}.${sql.identifier(timeColumn)} >= ${filters.since.toISOString()}::timestamptz`);
  return sql.join(parts, sql` AND `);
}

/**
 * Every finding, from one anti-join against cases for all the source tables together (one hash
 * of cases, however many tables reference it). A progress row is a candidate when no case has
 * its text id and its owner; a memory row or a pointer when no case has its text id. Only the
 * few candidates are then classified: the server's uuid check, and the case looked up by uuid
 * in scalar subqueries (so the planner cannot turn them into a full hash join for the few).
 */
export function allFindings(sources: Sources, filters: ScanFilters): SQL {
  const uuidShape = sources.shape === 'uuid';
  const tables = [
    { table: 'case_intake_progress', alias: 'cip', column: 'case_id', time: 'updated_at', uuid: uuidShape, owned: true, memoryId: false },
    ...(sources.memory
      ? [
          {
            table: 'case_memory',
            alias: 'm',
            column: 'case_id',
            time: 'created_at',
            uuid: Boolean(sources.memoryUuid),
            owned: false,
            memoryId: true,
          },
        ]
      : []),
    ...(sources.pointers
      ? [
          {
            table: 'bot_user_context',
            alias: 'b',
            column: 'active_case_id',
            time: 'updated_at',
            uuid: Boolean(sources.pointerUuid),
            owned: false,
            memoryId: false,
          },
        ]
      : []),
  ];
  const branches: SQL[] = [];
  for (const t of tables) {
    const a = sql.identifier(t.alias);
    const column = sql`${a}.${sql.identifier(t.column)}`;
    const select = sql`SELECT ${t.table}::text AS source_table, ${a}.user_id, ${column}::text AS case_id,
                              ${t.memoryId ? sql`${a}.memory_id` : sql`NULL::bigint`} AS memory_id, ${sql.raw(t.owned ? 'true' : 'false')} AS owned
                         FROM mega_agent.${sql.raw(t.table)} ${a}`;
    const present = t.column === 'active_case_id' ? sql`${column} IS NOT NULL AND ` : sql``;
    branches.push(sql`${select} WHERE ${present}${where(filters, t.alias, t.time)}`);
    if (filters.since !== undefined && filters.deletionsTracked) {
      // the rows naming a case deleted in the window, whenever they last changed (the others
      // are in the branch above); skipped at once when no case was deleted in the window
      const deleted = sql`SELECT d.case_id FROM caseguard.case_deletions d WHERE d.deleted_at >= ${filters.since.toISOString()}::timestamptz`;
      const names = t.uuid ? sql`${column} IN (${deleted})` : sql`${uuidOrNull(column, sources.serverVersionNum)} IN (${deleted})`;
      branches.push(sql`${select}
        WHERE ${present}${where({ userId: filters.userId }, t.alias, t.time)}
          AND ${a}.${sql.identifier(t.time)} < ${filters.since.toISOString()}::timestamptz
          AND EXISTS (${deleted}) AND ${names}`);
    }
  }
  // Over everything one hash of cases is cheapest. Over a window the candidates are few: each is
  // looked up in cases by its uuid (the primary key) in a scalar subquery, which the planner
  // cannot turn into a pass over cases whatever its estimates.
  const hasCase =
    filters.since === undefined
      ? sql`EXISTS (SELECT 1 FROM mega_agent.cases c
                     WHERE c.case_id::text = s.case_id AND (NOT s.owned OR c.user_id = s.user_id))`
      : sql`(SELECT true FROM mega_agent.cases c
              WHERE c.case_id = ${uuidOrNull(sql`s.case_id`, sources.serverVersionNum)}
                AND c.case_id::text = s.case_id AND (NOT s.owned OR c.user_id = s.user_id)) IS NOT NULL`;
  // In the uuid shape progress.case_id is a uuid already; spelling checks cannot fire there.
  const asUuid = uuidShape
    ? sql`CASE WHEN s.source_table = 'case_intake_progress' THEN s.case_id::uuid ELSE ${uuidOrNull(sql`s.case_id`, sources.serverVersionNum)} END`
    : uuidOrNull(sql`s.case_id`, sources.serverVersionNum);
  const duplicates = uuidShape
    ? sql`SELECT NULL::text AS user_id, NULL::uuid AS id, NULL::text AS case_id, 0::bigint AS n WHERE false`
    : sql`
      SELECT d.user_id, d.id, d.case_id, count(*) OVER (PARTITION BY d.user_id, d.id) AS n
        FROM (
          SELECT user_id, id, case_id FROM progress WHERE id IS NOT NULL
          UNION
          -- only a non-canonical candidate can have a healthy twin: look it up by primary key
          SELECT user_id, id, canonical FROM (
            SELECT p.user_id, p.id,
                   (SELECT q.case_id FROM mega_agent.case_intake_progress q
                     WHERE q.user_id = p.user_id AND q.case_id = p.id::text) AS canonical
              FROM progress p WHERE p.id IS NOT NULL AND p.case_id <> p.id::text) twin
           WHERE canonical IS NOT NULL
        ) d`;
  return sql`
    WITH k AS MATERIALIZED (
      SELECT s.source_table, s.user_id, s.case_id, s.memory_id, ${asUuid} AS id
        FROM (${sql.join(branches, sql` UNION ALL `)}) s
       WHERE NOT ${hasCase}
    ),
    cls AS MATERIALIZED (
      SELECT k.*, (SELECT c.user_id FROM mega_agent.cases c WHERE c.case_id = k.id) AS owner FROM k
    ),
    progress AS (SELECT * FROM cls WHERE source_table = 'case_intake_progress'),
    refs AS (SELECT * FROM cls WHERE source_table <> 'case_intake_progress'),
    dup AS (${duplicates})
    SELECT 'invalid_case_id' AS check_id, source_table, user_id, case_id,
           NULL::text AS canonical_id, NULL::text AS owner, NULL::bigint AS memory_id, 'not a uuid' AS detail
      FROM progress WHERE id IS NULL
    UNION ALL
    SELECT 'orphaned_progress', source_table, user_id, case_id, id::text, NULL, NULL, 'no case with this id'
      FROM progress WHERE id IS NOT NULL AND owner IS NULL
    UNION ALL
    SELECT 'noncanonical_case_id', source_table, user_id, case_id, id::text, owner, memory_id, 'spelling of an existing case id'
      FROM cls WHERE owner IS NOT NULL AND case_id <> id::text
    UNION ALL
    SELECT 'owner_mismatch', source_table, user_id, case_id, id::text, owner, NULL, 'the case belongs to another user'
      FROM progress WHERE owner IS NOT NULL AND owner <> user_id
    UNION ALL
    SELECT 'duplicate_progress', 'case_intake_progress', user_id, case_id, id::text, NULL, NULL,
           n || ' rows of this user name this uuid'
      FROM dup WHERE n > 1
    UNION ALL
    SELECT CASE WHEN source_table = 'case_memory' THEN 'orphaned_memory' ELSE 'dangling_active_case' END,
           source_table, user_id, case_id, id::text, NULL, memory_id,
           CASE WHEN id IS NULL THEN 'not a uuid' ELSE 'no case with this id' END
      FROM refs WHERE owner IS NULL`;
}

/**
 * Per check: the count, the distinct uuids, and the first `limit` findings in a stable order;
 * plus one row '' carrying missingCases, the distinct uuids without a case over all sources.
 */
export function summarise(findings: SQL, limit: number): SQL {
  const missing = sql.join(
    MISSING_CASE_CHECKS.map((c) => sql`${c}::text`),
    sql`, `,
  );
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
