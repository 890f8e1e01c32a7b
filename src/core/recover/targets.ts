/**
 * The snapshot a recover run works from: one set-based pass (the same candidate anti-joins as
 * scan) that writes every target into a temporary table of the run's own session
 * (pg_temp.caseguard_targets), numbered per kind for keyset batches. Temporary, so it goes with
 * the session however the run ends (a crash included), and written by CREATE TABLE AS, which,
 * unlike INSERT ... SELECT, may run its query in parallel. Kinds:
 *   create_case          a missing uuid referenced from progress, memory or a pointer
 *   normalise_progress   a non-canonical spelling in progress (not part of a duplicate group)
 *   normalise_memory     ... in memory
 *   normalise_pointer    ... in an active-case pointer
 *   quarantine_progress  invalid_case_id rows, and duplicate_progress rows but the one kept
 *   quarantine_memory    memory rows whose case_id is no uuid
 *   quarantine_pointer   pointers whose case_id is no uuid
 *   keep_duplicate       per duplicate group, the row the bot reads (most recently updated): it
 *                        stays live, its spelling canonicalised once its twins are quarantined
 * The quarantine kinds and keep_duplicate are always snapshotted (the plan reports them) and
 * executed only with --quarantine, in this order. With duplicates 'quarantine-all' every row
 * of a group is quarantined and none kept.
 */
import { sql, type SQL } from 'drizzle-orm';
import type { Executor } from '../db/database.js';
import type { DatabaseShape } from '../db/inspect.js';
import { SqlState, sqlStateOf } from '../db/sqlstate.js';
import type { ReferencingTable } from '../references.js';
import { uuidOrNull } from '../uuid.js';

export const TARGET_KINDS = [
  'create_case',
  'normalise_progress',
  'normalise_memory',
  'normalise_pointer',
  'quarantine_progress',
  'quarantine_memory',
  'quarantine_pointer',
  'keep_duplicate',
] as const;
export type TargetKind = (typeof TARGET_KINDS)[number];

/** What each kind of target changes, and how the plan names it. */
export const TARGET_KIND_INFO: Record<TargetKind, { table: 'cases' | ReferencingTable; label: string }> = {
  create_case: { table: 'cases', label: 'cases to create (missing uuids)' },
  normalise_progress: { table: 'case_intake_progress', label: 'progress spellings to normalise' },
  normalise_memory: { table: 'case_memory', label: 'memory spellings to normalise' },
  normalise_pointer: { table: 'bot_user_context', label: 'pointer spellings to normalise' },
  quarantine_progress: { table: 'case_intake_progress', label: 'progress rows to quarantine' },
  quarantine_memory: { table: 'case_memory', label: 'memory rows to quarantine' },
  quarantine_pointer: { table: 'bot_user_context', label: 'pointers to quarantine' },
  keep_duplicate: { table: 'case_intake_progress', label: 'duplicate groups: latest row kept' },
};

/** Kinds executed only with --quarantine. */
export function isQuarantineKind(kind: TargetKind): boolean {
  return kind.startsWith('quarantine_') || kind === 'keep_duplicate';
}

/** What happens to a duplicate group: the bot's row kept (default), or every row quarantined. */
export type DuplicatePolicy = 'keep-latest' | 'quarantine-all';

/**
 * The targets as one WITH query ending in all_targets (one anti-join against cases for every
 * table that references them: one hash of cases). Read-only; snapshot and preview build on it.
 */
export function targetsCte(shape: DatabaseShape, duplicates: DuplicatePolicy): SQL {
  const keepLatest = duplicates === 'keep-latest';
  const legacy = shape.shape === 'legacy';
  const asUuid = (column: SQL) => uuidOrNull(column, shape.serverVersionNum);
  const sources: SQL[] = [
    sql`SELECT 'p' AS src, cip.user_id, cip.case_id::text AS case_id, cip.created_at, NULL::bigint AS memory_id
          FROM mega_agent.case_intake_progress cip`,
  ];
  if (shape.hasMemory) sources.push(sql`SELECT 'm', m.user_id, m.case_id::text, m.created_at, m.memory_id FROM mega_agent.case_memory m`);
  if (shape.hasUserContext) {
    sources.push(sql`SELECT 'b', b.user_id, b.active_case_id::text, NULL::timestamptz, NULL::bigint
                       FROM mega_agent.bot_user_context b WHERE b.active_case_id IS NOT NULL`);
  }
  return sql`
    WITH cand AS MATERIALIZED (
      SELECT v.*, v.case_id = v.id::text AS canonical FROM (
        SELECT s.*, ${asUuid(sql`s.case_id`)} AS id
          FROM (${sql.join(sources, sql` UNION ALL `)}) s
         WHERE NOT EXISTS (SELECT 1 FROM mega_agent.cases c WHERE c.case_id::text = s.case_id)
      ) v
    ),
    -- The few candidates not in canonical spelling (or no uuid at all): every kind but
    -- create_case comes from these alone, so only this one pass looks at all candidates for them.
    odd AS MATERIALIZED (SELECT * FROM cand WHERE canonical IS NOT TRUE),
    prog AS (SELECT user_id, case_id, created_at, id FROM odd WHERE src = 'p'),
    mem AS (SELECT memory_id, user_id, case_id, created_at, id FROM odd WHERE src = 'm'),
    ptr AS (SELECT user_id, case_id, id FROM odd WHERE src = 'b'),
    -- A progress row is in a duplicate group when its user names its uuid in another spelling
    -- too. Two rows of one user never share a spelling (the key), so every group has a row in
    -- a spelling that is not canonical: only those rows need the look at their user's rows.
    twins AS MATERIALIZED (
      SELECT DISTINCT p.user_id, p.id FROM prog p
       WHERE p.id IS NOT NULL
         AND EXISTS (SELECT 1 FROM mega_agent.case_intake_progress q
                      WHERE q.user_id = p.user_id AND q.case_id::text <> p.case_id AND ${asUuid(sql`q.case_id::text`)} = p.id)
    ),
    -- Every reference to a missing case. Each failed the text anti-join: one in canonical
    -- spelling names a case that does not exist; only other spellings need the lookup by uuid.
    missing AS (
      SELECT r.id, r.user_id, CASE r.src WHEN 'p' THEN 1 WHEN 'm' THEN 2 ELSE 3 END AS source, r.created_at FROM (
        SELECT * FROM cand WHERE canonical
        UNION ALL
        SELECT * FROM odd WHERE id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM mega_agent.cases c WHERE c.case_id = odd.id)
      ) r
    ),
    -- Per missing uuid, in one sort: the reference that picks its owner (the first source's
    -- earliest), and whether several users name it.
    ranked AS (
      SELECT m.id, m.user_id, m.source,
             row_number() OVER (PARTITION BY m.id ORDER BY m.source, m.created_at NULLS LAST, m.user_id) AS pick,
             min(m.user_id) OVER (PARTITION BY m.id) <> max(m.user_id) OVER (PARTITION BY m.id) AS shared
        FROM missing m
    ),
    -- One case per missing uuid, numbered in uuid order (the order the sort above left them in).
    chosen AS MATERIALIZED (
      SELECT id, user_id, source, shared, row_number() OVER (ORDER BY id) AS seq FROM ranked WHERE pick = 1
    ),
    owners AS (
      SELECT m.id, count(DISTINCT m.user_id)::int AS n, array_agg(DISTINCT m.user_id ORDER BY m.user_id) AS list
        FROM missing m WHERE m.id IN (SELECT id FROM chosen WHERE shared) GROUP BY m.id
    ),
    others AS (
      SELECT 'normalise_progress' AS kind, 'noncanonical_case_id' AS check_id, p.user_id, p.case_id, p.id AS canonical_id,
             NULL::bigint AS memory_id, NULL::int AS owners, NULL::text[] AS owner_list
        FROM prog p WHERE p.id IS NOT NULL AND p.case_id <> p.id::text
         AND NOT EXISTS (SELECT 1 FROM twins t WHERE t.user_id = p.user_id AND t.id = p.id)
      UNION ALL
      SELECT 'normalise_memory', 'noncanonical_case_id', m.user_id, m.case_id, m.id, m.memory_id, NULL, NULL
        FROM mem m WHERE m.id IS NOT NULL AND m.case_id <> m.id::text
      UNION ALL
      SELECT 'normalise_pointer', 'noncanonical_case_id', b.user_id, b.case_id, b.id, NULL, NULL, NULL
        FROM ptr b WHERE b.id IS NOT NULL AND b.case_id <> b.id::text
      UNION ALL
      SELECT 'quarantine_progress', 'invalid_case_id', p.user_id, p.case_id, NULL, NULL, NULL, NULL
        FROM prog p WHERE p.id IS NULL
      UNION ALL
      SELECT CASE WHEN d.latest AND ${keepLatest} THEN 'keep_duplicate' ELSE 'quarantine_progress' END,
             'duplicate_progress', d.user_id, d.case_id, d.id, NULL, NULL, NULL
        FROM (
          SELECT q.user_id, q.case_id::text AS case_id, t.id,
                 row_number() OVER (PARTITION BY q.user_id, t.id ORDER BY q.updated_at DESC, q.created_at DESC, q.case_id::text) = 1 AS latest
            FROM twins t JOIN mega_agent.case_intake_progress q
              ON q.user_id = t.user_id AND ${legacy ? sql`${asUuid(sql`q.case_id`)} = t.id` : sql`q.case_id = t.id`}
        ) d
      UNION ALL
      SELECT 'quarantine_memory', 'orphaned_memory', m.user_id, m.case_id, NULL, m.memory_id, NULL, NULL
        FROM mem m WHERE m.id IS NULL
      UNION ALL
      SELECT 'quarantine_pointer', 'dangling_active_case', b.user_id, b.case_id, NULL, NULL, NULL, NULL
        FROM ptr b WHERE b.id IS NULL
    ),
    -- every target, numbered per kind for keyset batches
    all_targets AS (
      SELECT 'create_case' AS kind, c.seq,
             CASE c.source WHEN 1 THEN 'orphaned_progress' WHEN 2 THEN 'orphaned_memory' ELSE 'dangling_active_case' END AS check_id,
             c.user_id, NULL::text AS case_id, c.id AS canonical_id, NULL::bigint AS memory_id, coalesce(o.n, 1) AS owners, o.list AS owner_list
        FROM chosen c LEFT JOIN owners o ON o.id = c.id
      UNION ALL
      SELECT kind, row_number() OVER (PARTITION BY kind ORDER BY canonical_id, user_id, case_id, memory_id), check_id, user_id, case_id, canonical_id, memory_id, owners, owner_list
        FROM others
    )`;
}

/** The run's targets: a temporary table, so every statement that reads it runs on the run's session. */
export const TARGETS = sql`pg_temp.caseguard_targets`;

/**
 * A target's place in the table: its kind's rank in TARGET_KINDS times 2^40, plus its number
 * within the kind (from 1). One bigint key, so one small index serves every kind's batches.
 */
const KIND_STRIDE = 2 ** 40;
export function targetPosition(kind: TargetKind, seq: number): number {
  return TARGET_KINDS.indexOf(kind) * KIND_STRIDE + seq;
}
const KIND_ARRAY = sql`ARRAY[${sql.join(
  TARGET_KINDS.map((k) => sql`${k}`),
  sql`, `,
)}]::text[]`;
const positionSql = sql`array_position(${KIND_ARRAY}, kind) - 1`;

/**
 * Writes the run's targets into its session's temporary table; returns how many of each kind,
 * and how many missing uuids several users name.
 */
export async function snapshotTargets(
  session: Executor,
  shape: DatabaseShape,
  duplicates: DuplicatePolicy,
): Promise<{ counts: Record<TargetKind, number>; shared: number }> {
  await dropTargets(session);
  await allowTargetsInMemory(session);
  await session.execute(sql`
    CREATE TEMP TABLE caseguard_targets AS
    ${targetsCte(shape, duplicates)}
    SELECT (${positionSql})::bigint * ${KIND_STRIDE}::bigint + seq AS pos,
           kind, check_id, user_id, case_id, canonical_id, memory_id, owners, owner_list
      FROM all_targets`);
  await session.execute(sql`CREATE INDEX ON ${TARGETS} (pos)`);
  // each kind's count is its last number (through the index); shared owners need the one scan
  const result = await session.execute<{ kind: TargetKind; n: string | null; shared: string }>(sql`
    SELECT k.kind, (SELECT max(t.pos) - k.base FROM ${TARGETS} t WHERE t.pos > k.base AND t.pos < k.base + ${KIND_STRIDE}::bigint) AS n,
           CASE WHEN k.kind = 'create_case' THEN (SELECT count(*) FROM ${TARGETS} t WHERE t.owners > 1) ELSE 0 END AS shared
      FROM unnest(${KIND_ARRAY}, ARRAY[${sql.join(
        TARGET_KINDS.map((k) => sql`${targetPosition(k, 0)}`),
        sql`, `,
      )}]::bigint[]) AS k(kind, base)`);
  const counts = Object.fromEntries(TARGET_KINDS.map((k) => [k, 0])) as Record<TargetKind, number>;
  let shared = 0;
  for (const row of result.rows) {
    counts[row.kind] = Number(row.n ?? 0);
    shared += Number(row.shared);
  }
  return { counts, shared };
}

/**
 * Room for the targets in the session's own buffers (temp_buffers, 8 MB by default: about 80k
 * targets) rather than in files: a cap, taken only as used. PostgreSQL takes the setting only
 * before the session's first temporary table; a session that had one keeps what it has.
 */
async function allowTargetsInMemory(session: Executor): Promise<void> {
  try {
    await session.execute(sql`SET temp_buffers = '64MB'`);
  } catch (error) {
    if (sqlStateOf(error) !== SqlState.invalidParameterValue) throw error;
  }
}

export async function dropTargets(session: Executor): Promise<void> {
  await session.execute(sql`DROP TABLE IF EXISTS ${TARGETS}`);
}

export interface TargetSample {
  kind: TargetKind;
  check_id: string;
  user_id: string | null;
  case_id: string | null;
  canonical_id: string | null;
  memory_id: number | null;
  owners: number | null;
  owner_list: string[] | null;
}

/**
 * The plan's numbers without writing anything: counts per kind, the first `limit` targets of
 * each kind and of the ambiguous owners, read in the caller's (read-only) transaction. The same
 * query and order as snapshotTargets, so a dry run shows what a real run would snapshot.
 */
export async function previewTargets(
  db: Executor,
  shape: DatabaseShape,
  limit: number,
  duplicates: DuplicatePolicy,
): Promise<{ counts: Record<TargetKind, number>; samples: TargetSample[]; ambiguous: { count: number; samples: TargetSample[] } }> {
  const result = await db.execute<
    TargetSample & { seq: string; amb_seq: string; kind_n: string; amb_n: string } & Record<string, unknown>
  >(sql`
    ${targetsCte(shape, duplicates)},
    numbered AS (
      SELECT t.*, row_number() OVER (PARTITION BY kind, owners > 1 ORDER BY seq) AS amb_seq FROM all_targets t
    ),
    counted AS (
      SELECT n.*, count(*) OVER (PARTITION BY kind) AS kind_n,
             count(*) FILTER (WHERE kind = 'create_case' AND owners > 1) OVER () AS amb_n
        FROM numbered n
    )
    SELECT kind, check_id, user_id, case_id, canonical_id::text AS canonical_id, memory_id, owners, owner_list, seq, amb_seq, kind_n, amb_n
      FROM counted
     WHERE seq <= greatest(${limit}::int, 1) OR (kind = 'create_case' AND owners > 1 AND amb_seq <= ${limit}::int)
     ORDER BY kind, seq`);
  const counts = Object.fromEntries(TARGET_KINDS.map((k) => [k, 0])) as Record<TargetKind, number>;
  const samples: TargetSample[] = [];
  const ambiguousSamples: TargetSample[] = [];
  let ambiguousCount = 0;
  for (const r of result.rows) {
    counts[r.kind] = Number(r.kind_n);
    ambiguousCount = Number(r.amb_n);
    const sample: TargetSample = {
      kind: r.kind,
      check_id: r.check_id,
      user_id: r.user_id,
      case_id: r.case_id,
      canonical_id: r.canonical_id,
      memory_id: r.memory_id === null ? null : Number(r.memory_id),
      owners: r.owners,
      owner_list: r.owner_list,
    };
    if (Number(r.seq) <= limit) samples.push(sample);
    if (r.kind === 'create_case' && (r.owners ?? 0) > 1 && Number(r.amb_seq) <= limit) ambiguousSamples.push(sample);
  }
  return { counts, samples, ambiguous: { count: ambiguousCount, samples: ambiguousSamples } };
}

/** The first `limit` targets of each kind, for the plan. */
export async function sampleTargets(session: Executor, limit: number): Promise<TargetSample[]> {
  // each kind's first positions, through the index
  const ranges = TARGET_KINDS.map((k) => sql`(t.pos > ${targetPosition(k, 0)}::bigint AND t.pos <= ${targetPosition(k, limit)}::bigint)`);
  const result = await session.execute<TargetSample & Record<string, unknown>>(sql`
    SELECT kind, check_id, user_id, case_id, canonical_id::text AS canonical_id, memory_id, owners, owner_list
      FROM ${TARGETS} t WHERE ${sql.join(ranges, sql` OR `)} ORDER BY t.pos`);
  return result.rows.map((r) => ({ ...r, memory_id: r.memory_id === null ? null : Number(r.memory_id) }));
}

/** Missing uuids referenced by more than one user (count from the snapshot): the owner chosen, and the others. */
export async function ambiguousOwners(
  session: Executor,
  count: number,
  limit: number,
): Promise<{ count: number; samples: TargetSample[] }> {
  if (count === 0) return { count, samples: [] };
  const rows = await session.execute<TargetSample & Record<string, unknown>>(sql`
    SELECT kind, check_id, user_id, case_id, canonical_id::text AS canonical_id, memory_id, owners, owner_list
      FROM ${TARGETS} WHERE kind = 'create_case' AND owners > 1 ORDER BY pos LIMIT ${limit}`);
  return { count, samples: rows.rows };
}
