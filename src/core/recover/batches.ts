/**
 * One statement per batch and kind: it takes the next keyset page of targets, applies it, and
 * writes the journal items from the rows it actually changed (RETURNING), so a row the live bot
 * created meanwhile is neither duplicated nor an error, nor claimed by this run. A single
 * statement is its own transaction: a batch commits or rolls back whole. It reads the run's
 * temporary targets table, so it runs on the run's session.
 */
import { sql, type SQL } from 'drizzle-orm';
import { INSERT_ITEMS } from '../journal/journal.js';
import { MISSING_CASE_CHECKS } from '../scan/checks.js';
import type { ReferencingTable } from '../references.js';
import { targetPosition, TARGETS, type TargetKind } from './targets.js';

import { RECOVERED_TITLE } from '../intake/store.js';

export { RECOVERED_TITLE };
export const RECOVERED_STATUS = 'intake';

function page(kind: TargetKind, afterSeq: number, size: number): SQL {
  return sql`SELECT * FROM ${TARGETS} WHERE pos > ${targetPosition(kind, afterSeq)}::bigint AND pos <= ${targetPosition(kind, afterSeq + size)}::bigint ORDER BY pos`;
}

export interface BatchSettings {
  shapeIsUuid: boolean;
  /**
   * Values for the application's own required columns of cases (--case-value), by column; each
   * converted to the column's type by jsonb_populate_record, so any type works as text.
   */
  caseValues: Record<string, string>;
}

/**
 * The batch statement for a kind; it returns (last_pos, taken, applied, vanished). vanished
 * (create_case only): ids neither inserted nor present when the statement began: a case the
 * live bot created meanwhile, or one a BEFORE INSERT trigger suppressed; the caller tells them
 * apart with a fresh look.
 */
export function batchStatement(kind: TargetKind, runId: number, afterSeq: number, size: number, settings: BatchSettings): SQL {
  const b = page(kind, afterSeq, size);
  const tail = (applied: SQL, vanished: SQL = sql`NULL::text[]`) => sql`
    SELECT (SELECT max(pos) FROM b) AS last_pos, (SELECT count(*) FROM b) AS taken, (${applied}) AS applied, (${vanished}) AS vanished`;
  const shapeIsUuid = settings.shapeIsUuid;
  const extraColumns = Object.keys(settings.caseValues);
  const extraNames = extraColumns.map((c) => sql`, ${sql.identifier(c)}`);
  const extraValues = extraColumns.map(
    (c) => sql`, (jsonb_populate_record(NULL::mega_agent.cases, ${JSON.stringify(settings.caseValues)}::jsonb)).${sql.identifier(c)}`,
  );
  const progressCase = shapeIsUuid ? sql`b.canonical_id` : sql`b.canonical_id::text`;
  switch (kind) {
    case 'create_case': {
      // The metadata is one constant per check (only a case several users referenced lists
      // them): built once per statement, not per row.
      const metadata = sql`CASE b.check_id ${sql.join(
        MISSING_CASE_CHECKS.map(
          (check) => sql`WHEN ${check} THEN ${JSON.stringify({ recovered_by: 'caseguard', run_id: runId, check })}::jsonb`,
        ),
        sql` `,
      )} ELSE jsonb_build_object('recovered_by', 'caseguard', 'run_id', ${runId}::bigint, 'check', b.check_id) END
        || CASE WHEN b.owners > 1 THEN jsonb_build_object('referencing_users', to_jsonb(b.owner_list)) ELSE '{}' END`;
      // One journal item per check for the batch: the ids and the transaction that wrote them
      // (see schema/journal.ts, run_items).
      return sql`
        WITH b AS (${b}),
        ins AS (
          INSERT INTO mega_agent.cases (case_id, user_id, title, status, metadata${sql.join(extraNames)})
          SELECT b.canonical_id, b.user_id, ${RECOVERED_TITLE}, ${RECOVERED_STATUS}, ${metadata}${sql.join(extraValues)}
            FROM b
          ON CONFLICT (case_id) DO NOTHING
          RETURNING case_id, metadata->>'check' AS check_id
        ),
        -- The rows' xmin is this statement's transaction id, modulo 2^32. Asked of the
        -- transaction, not RETURNING xmin: a partitioned cases table cannot return system columns.
        items AS (
          INSERT INTO caseguard.run_items (run_id, action, check_id, table_name, row_key, before, after, row_count, case_ids)
          SELECT ${runId}, 'case_created', ins.check_id, 'cases', '{}', NULL,
                 jsonb_build_object('xmin', (pg_current_xact_id()::text::bigint % 4294967296)::text), count(*), array_agg(ins.case_id)
            FROM ins GROUP BY ins.check_id
          RETURNING row_count
        )
        ${tail(
          sql`SELECT coalesce(sum(row_count), 0) FROM items`,
          // looked for only when the batch inserted fewer cases than it took
          sql`SELECT CASE WHEN (SELECT count(*) FROM ins) < (SELECT count(*) FROM b) THEN (
                SELECT array_agg(b.canonical_id::text) FROM b
                 WHERE NOT EXISTS (SELECT 1 FROM ins WHERE ins.case_id = b.canonical_id)
                   AND NOT EXISTS (SELECT 1 FROM mega_agent.cases c WHERE c.case_id = b.canonical_id)) END`,
        )}`;
    }
    case 'normalise_progress':
    case 'keep_duplicate':
      // Not where the user has a row under the canonical id already (a duplicate: never guessed;
      // the kept row of a group is normalised once its twins are quarantined).
      return normalise(
        b,
        runId,
        'case_intake_progress',
        'case_id',
        progressCase,
        sql`t.user_id = b.user_id AND t.case_id::text = b.case_id
            AND NOT EXISTS (SELECT 1 FROM mega_agent.case_intake_progress q WHERE q.user_id = b.user_id AND q.case_id::text = b.canonical_id::text)`,
        sql`jsonb_build_object('user_id', t.user_id, 'case_id', t.case_id::text)`,
        tail,
      );
    case 'normalise_memory':
      return normalise(
        b,
        runId,
        'case_memory',
        'case_id',
        sql`b.canonical_id::text`,
        sql`t.memory_id = b.memory_id AND t.case_id::text = b.case_id`,
        sql`jsonb_build_object('memory_id', t.memory_id)`,
        tail,
      );
    case 'normalise_pointer':
      return normalise(
        b,
        runId,
        'bot_user_context',
        'active_case_id',
        sql`b.canonical_id::text`,
        sql`t.user_id = b.user_id AND t.active_case_id::text = b.case_id`,
        sql`jsonb_build_object('user_id', t.user_id)`,
        tail,
      );
    case 'quarantine_progress':
      return quarantine(
        b,
        runId,
        'case_intake_progress',
        sql`t.user_id = b.user_id AND t.case_id::text = b.case_id`,
        sql`jsonb_build_object('user_id', t.user_id, 'case_id', t.case_id::text)`,
        tail,
      );
    case 'quarantine_memory':
      return quarantine(
        b,
        runId,
        'case_memory',
        sql`t.memory_id = b.memory_id AND t.case_id::text = b.case_id`,
        sql`jsonb_build_object('memory_id', t.memory_id)`,
        tail,
      );
    case 'quarantine_pointer':
      return quarantine(
        b,
        runId,
        'bot_user_context',
        sql`t.user_id = b.user_id AND t.active_case_id::text = b.case_id`,
        sql`jsonb_build_object('user_id', t.user_id)`,
        tail,
      );
  }
}

/** Rewrite a spelling to the canonical id, journaling the row's key and its before and after. */
function normalise(
  b: SQL,
  runId: number,
  table: ReferencingTable,
  column: string,
  canonical: SQL,
  match: SQL,
  key: SQL,
  tail: (applied: SQL) => SQL,
): SQL {
  const col = sql.identifier(column);
  return sql`
    WITH b AS (${b}),
    upd AS (
      UPDATE mega_agent.${sql.identifier(table)} t SET ${col} = ${canonical}
        FROM b WHERE ${match}
      RETURNING ${key} AS row_key, b.case_id AS old_value, t.${col}::text AS new_value
    ),
    items AS (
      ${INSERT_ITEMS}
      SELECT ${runId}, 'spelling_changed', 'noncanonical_case_id', ${table}, row_key,
             jsonb_build_object(${column}::text, old_value), jsonb_build_object(${column}::text, new_value)
        FROM upd
      RETURNING 1
    )
    ${tail(sql`SELECT count(*) FROM items`)}`;
}

/** Copy into the quarantine and delete, in one statement: nothing is deleted without its copy. */
function quarantine(b: SQL, runId: number, table: ReferencingTable, match: SQL, key: SQL, tail: (applied: SQL) => SQL): SQL {
  return sql`
    WITH b AS (${b}),
    del AS (
      DELETE FROM mega_agent.${sql.identifier(table)} t USING b WHERE ${match}
      RETURNING to_jsonb(t) AS row_data, ${key} AS row_key, b.check_id
    ),
    q AS (
      INSERT INTO caseguard.quarantine (run_id, source_table, reason, row_data)
      SELECT ${runId}, ${table}, check_id, row_data FROM del
      RETURNING quarantine_id, row_data, reason
    ),
    items AS (
      ${INSERT_ITEMS}
      SELECT ${runId}, 'quarantined', q.reason, ${table}, jsonb_build_object('quarantine_id', q.quarantine_id), q.row_data, NULL
        FROM q
      RETURNING 1
    )
    ${tail(sql`SELECT count(*) FROM items`)}`;
}
