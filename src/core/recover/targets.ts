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
function targetsCte(shape: DatabaseShape, duplicates: DuplicatePolicy): SQL {
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
      SELECT s.*, ${asUuid(sql`s.case_id`)} AS id
        FROM (${sql.join(sources, sql` UNION ALL `)}) s
       WHERE NOT EXISTS (SELECT 1 FROM mega_agent.cases c WHERE c.case_id::text = s.case_id)
    ),
    prog AS NOT MATERIALIZED (SELECT user_id, case_id, created_at, id FROM cand WHERE src = 'p'),
    mem AS NOT MATERIALIZED (SELECT memory_id, user_id, case_id, created_at, id FROM cand WHERE src = 'm'),
    ptr AS NOT MATERIALIZED (SELECT user_id, case_id, id FROM cand WHERE src = 'b'),
    -- A progress row is in a duplicate group when its user names its uuid in another spelling
    -- too. Two rows of one user never share a spelling (the key), so every group has a row in
    -- a spelling that is not canonical: only those rows need the look at their user's rows.
    twins AS MATERIALIZED (
      SELECT DISTINCT p.user_id, p.id FROM prog p
       WHERE p.id IS NOT NULL AND p.case_id <> p.id::text
         AND EXISTS (SELECT 1 FROM mega_agent.case_intake_progress q
                      WHERE q.user_id = p.user_id AND q.case_id::text <> p.case_id AND ${asUuid(sql`q.case_id::text`)} = p.id)
    ),
    -- Every reference to a missing case. Each failed the text anti-join: one in canonical
    -- spelling names a case that does not exist; only other spellings need the lookup by uuid.
    missing AS (
      SELECT r.id, r.user_id, r.source, r.created_at FROM (
        SELECT id, user_id, 1 AS source, created_at, case_id FROM prog WHERE id IS NOT NULL
        UNION ALL SELECT id, user_id, 2, created_at, case_id FROM mem WHERE id IS NOT NULL
        UNION ALL SELECT id, user_id, 3, NULL, case_id FROM ptr WHERE id IS NOT NULL
      ) r
      WHERE r.case_id = r.id::text OR NOT EXISTS (SELECT 1 FROM mega_agent.cases c WHERE c.case_id = r.id)
    ),
    -- Per missing uuid: its users (one, nearly always) and the first source naming it.
    grouped AS (
      SELECT id, min(user_id) AS first_user, max(user_id) AS last_user, min(source) AS source FROM missing GROUP BY id
    ),
    -- The references to a uuid several users name: its owner is the user of the first source's
    -- earliest reference.
    shared AS (
      SELECT m.* FROM missing m JOIN grouped g ON g.id = m.id AND g.first_user <> g.last_user
    ),
    created AS (
      SELECT g.id, g.first_user AS user_id, g.source, 1 AS owners, ARRAY[g.first_user] AS owner_list
        FROM grouped g WHERE g.first_user = g.last_user
      UNION ALL
      SELECT ch.id, ch.user_id, ch.source, o.n, o.list
        FROM (SELECT DISTINCT ON (id) id, user_id, source FROM shared ORDER BY id, source, created_at NULLS LAST, user_id) ch
        JOIN (SELECT id, count(DISTINCT user_id)::int AS n, array_agg(DISTINCT user_id ORDER BY user_id) AS list FROM shared GROUP BY id) o
          ON o.id = ch.id
    ),
    all_targets AS (
      SELECT 'create_case' AS kind,
             CASE c.source WHEN 1 THEN 'orphaned_progress' WHEN 2 THEN 'orphaned_memory' ELSE 'dangling_active_case' END AS check_id,
             c.user_id, NULL::text AS case_id, c.id AS canonical_id, NULL::bigint AS memory_id, c.owners, c.owner_list
        FROM created c
      UNION ALL
      SELECT 'normalise_progress', 'noncanonical_case_id', p.user_id, p.case_id, p.id, NULL, NULL, NULL
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
    )`;
}

const TARGET_ORDER = sql`ORDER BY canonical_id, user_id, case_id, memory_id`;

/** The run's targets: a temporary table, so every statement that reads it runs on the run's session. */
export const TARGETS = sql`pg_temp.caseguard_targets`;

/** Writes the run's targets into its session's temporary table; returns how many of each kind. */
export async function snapshotTargets(
  session: Executor,
  shape: DatabaseShape,
  duplicates: DuplicatePolicy,
): Promise<Record<TargetKind, number>> {
  await dropTargets(session);
  await session.execute(sql`
    CREATE TEMP TABLE caseguard_targets AS
    ${targetsCte(shape, duplicates)}
    SELECT kind, row_number() OVER (PARTITION BY kind ${TARGET_ORDER}) AS seq,
           check_id, user_id, case_id, canonical_id, memory_id, owners, owner_list
      FROM all_targets`);
  await session.execute(sql`CREATE INDEX ON ${TARGETS} (kind, seq)`);
  const result = await session.execute<{ kind: TargetKind; n: string }>(sql`SELECT kind, count(*) AS n FROM ${TARGETS} GROUP BY kind`);
  const counts = Object.fromEntries(TARGET_KINDS.map((k) => [k, 0])) as Record<TargetKind, number>;
  for (const row of result.rows) counts[row.kind] = Number(row.n);
  return counts;
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
  const result = await db.execute<TargetSample & { seq: string; amb_seq: string; kind_n: string; amb_n: string } & Record<string, unknown>>(sql`
    ${targetsCte(shape, duplicates)},
    numbered AS (
      SELECT t.*, row_number() OVER (PARTITION BY kind ${TARGET_ORDER}) AS seq,
             row_number() OVER (PARTITION BY kind, owners > 1 ${TARGET_ORDER}) AS amb_seq
        FROM all_targets t
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
      kind: r.kind, check_id: r.check_id, user_id: r.user_id, case_id: r.case_id, canonical_id: r.canonical_id,
      memory_id: r.memory_id === null ? null : Number(r.memory_id), owners: r.owners, owner_list: r.owner_list,
    };
    if (Number(r.seq) <= limit) samples.push(sample);
    if (r.kind === 'create_case' && (r.owners ?? 0) > 1 && Number(r.amb_seq) <= limit) ambiguousSamples.push(sample);
  }
  return { counts, samples, ambiguous: { count: ambiguousCount, samples: ambiguousSamples } };
}

/** The first `limit` targets of each kind, for the plan. */
export async function sampleTargets(session: Executor, limit: number): Promise<TargetSample[]> {
  const result = await session.execute<TargetSample & Record<string, unknown>>(sql`
    SELECT kind, check_id, user_id, case_id, canonical_id::text AS canonical_id, memory_id, owners, owner_list
      FROM ${TARGETS} WHERE seq <= ${limit} ORDER BY kind, seq`);
  return result.rows.map((r) => ({ ...r, memory_id: r.memory_id === null ? null : Number(r.memory_id) }));
}

/** Missing uuids referenced by more than one user: the owner chosen, and the others. */
export async function ambiguousOwners(session: Executor, limit: number): Promise<{ count: number; samples: TargetSample[] }> {
  const count = await session.execute<{ n: string }>(sql`
    SELECT count(*) AS n FROM ${TARGETS} WHERE kind = 'create_case' AND owners > 1`);
  const rows = await session.execute<TargetSample & Record<string, unknown>>(sql`
    SELECT kind, check_id, user_id, case_id, canonical_id::text AS canonical_id, memory_id, owners, owner_list
      FROM ${TARGETS} WHERE kind = 'create_case' AND owners > 1 ORDER BY seq LIMIT ${limit}`);
  return { count: Number(count.rows[0]?.n ?? 0), samples: rows.rows };
}
