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

/**
 * Just these rows (what watch judges again after a commit): the progress rows and the pointer
 * of these users, these memory rows, and every row naming one of these cases (uuid semantics).
 * Each selector is an index lookup but caseIds outside the uuid shape.
 */
export interface Domain {
  users: readonly string[];
  memoryIds: readonly string[];
  caseIds: readonly string[];
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

interface SourceTable {
  table: 'case_intake_progress' | 'case_memory' | 'bot_user_context';
  alias: string;
  column: string;
  /** What --since compares. */
  time: string;
  /** The case id column is uuid. */
  uuid: boolean;
  /** Its case must be the same user's (progress). */
  owned: boolean;
  /** The column a Domain's users select (memory rows are selected by memory id). */
  byUser: boolean;
}

function sourceTables(sources: Sources): SourceTable[] {
  const progress: SourceTable = {
    table: 'case_intake_progress',
    alias: 'cip',
    column: 'case_id',
    time: 'updated_at',
    uuid: sources.shape === 'uuid',
    owned: true,
    byUser: true,
  };
  const memory: SourceTable = {
    table: 'case_memory',
    alias: 'm',
    column: 'case_id',
    time: 'created_at',
    uuid: Boolean(sources.memoryUuid),
    owned: false,
    byUser: false,
  };
  const pointers: SourceTable = {
    table: 'bot_user_context',
    alias: 'b',
    column: 'active_case_id',
    time: 'updated_at',
    uuid: Boolean(sources.pointerUuid),
    owned: false,
    byUser: true,
  };
  return [progress, ...(sources.memory ? [memory] : []), ...(sources.pointers ? [pointers] : [])];
}

/** One source table's rows that meet `conditions`, in the columns the anti-join reads. */
function branch(t: SourceTable, conditions: SQL[]): SQL {
  const a = sql.identifier(t.alias);
  const column = sql`${a}.${sql.identifier(t.column)}`;
  const present = t.column === 'active_case_id' ? [sql`${column} IS NOT NULL`] : [];
  return sql`SELECT ${t.table}::text AS source_table, ${a}.user_id, ${column}::text AS case_id,
                    ${t.table === 'case_memory' ? sql`${a}.memory_id` : sql`NULL::bigint`} AS memory_id, ${sql.raw(t.owned ? 'true' : 'false')} AS owned
               FROM mega_agent.${sql.raw(t.table)} ${a}
              WHERE ${sql.join([sql`true`, ...present, ...conditions], sql` AND `)}`;
}

/** The rows of one table a scan reads: all of them, a user's, a window's, or a Domain's. */
function branchesOf(t: SourceTable, sources: Sources, filters: ScanFilters, domain?: Domain): SQL[] {
  const a = sql.identifier(t.alias);
  const column = sql`${a}.${sql.identifier(t.column)}`;
  const time = sql`${a}.${sql.identifier(t.time)}`;
  const names = (ids: SQL) => (t.uuid ? sql`${column} IN (${ids})` : sql`${uuidOrNull(column, sources.serverVersionNum)} IN (${ids})`);
  const user = filters.userId !== undefined ? [sql`${a}.user_id = ${filters.userId}`] : [];
  if (domain) {
    const chosen = t.byUser ? domain.users : t.table === 'case_memory' ? domain.memoryIds : [];
    const key = t.byUser
      ? sql`${a}.user_id = ANY(${sql.param([...chosen])}::text[])`
      : sql`${a}.memory_id = ANY(${sql.param([...chosen])}::bigint[])`;
    return [
      ...(chosen.length > 0 ? [branch(t, [...user, key])] : []),
      ...(domain.caseIds.length > 0 ? [branch(t, [...user, names(sql`SELECT unnest(${sql.param([...domain.caseIds])}::uuid[])`)])] : []),
    ];
  }
  if (filters.since === undefined) return [branch(t, user)];
  const since = sql`${filters.since.toISOString()}::timestamptz`;
  const changed = branch(t, [...user, sql`${time} >= ${since}`]);
  if (!filters.deletionsTracked) return [changed];
  // the rows naming a case deleted in the window, whenever they last changed (the others are in
  // the branch above); skipped at once when no case was deleted in the window
  const deleted = sql`SELECT d.case_id FROM caseguard.case_deletions d WHERE d.deleted_at >= ${since}`;
  return [changed, branch(t, [...user, sql`${time} < ${since}`, sql`EXISTS (${deleted})`, names(deleted)])];
}

/**
 * Every finding, from one anti-join against cases for all the source tables together (one hash
 * of cases, however many tables reference it). A progress row is a candidate when no case has
 * its text id and its owner; a memory row or a pointer when no case has its text id. Only the
 * few candidates are then classified: the server's uuid check, and the case looked up by uuid
 * in scalar subqueries (so the planner cannot turn them into a full hash join for the few).
 * With a domain, only those rows (UNION: a row two selectors choose is read once).
 */
export function allFindings(sources: Sources, filters: ScanFilters, domain?: Domain): SQL {
  const uuidShape = sources.shape === 'uuid';
  const branches = sourceTables(sources).flatMap((t) => branchesOf(t, sources, filters, domain));
  if (branches.length === 0) branches.push(sql`SELECT NULL::text, NULL::text, NULL::text, NULL::bigint, false WHERE false`);
  // Over everything one hash of cases is cheapest. Over a window the candidates are few: each is
  // looked up in cases by its uuid (the primary key) in a scalar subquery, which the planner
  // cannot turn into a pass over cases whatever its estimates.
  const hasCase =
    filters.since === undefined && !domain
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
        FROM (${sql.join(branches, domain ? sql` UNION ` : sql` UNION ALL `)}) s
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
