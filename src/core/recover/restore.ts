/**
 * Putting quarantined rows back, exactly as they were, through jsonb_populate_record (so it
 * does not depend on the table's column list); a row whose key is taken meanwhile is left out
 * and reported, never overwritten.
 *
 * Set-based, in keyset pages by quarantine id, and independent of statistics: caseguard.quarantine
 * is often fresh (or reset by a crash) and unanalysed, and a plan that joins the inserted rows
 * back to their quarantine entries then goes quadratic. So nothing is joined: a page's entries
 * come by their (run_id, quarantine_id) index, the INSERT returns the keys it wrote, the keys
 * are matched to the entries here, and the entries restored are marked by primary key. Each
 * statement reads through an index whatever the planner guesses (enable_seqscan off, locally).
 *
 * `quarantine restore` applies a page per transaction in the run's batch loop (a stop or a
 * lost connection keeps the pages committed; a rerun puts back the rest); `recover --undo`
 * restores every page inside its one transaction.
 */
import { and, eq, gt, isNull, sql, type SQL } from 'drizzle-orm';
import type { Database, Executor, Tx } from '../db/database.js';
import type { DatabaseShape } from '../db/inspect.js';
import { runBlockers } from '../db/locks.js';
import { describePgError, sqlStateOf } from '../db/sqlstate.js';
import { assertUnblocked, UsageError, type Blocker } from '../errors.js';
import { INSERT_ITEMS } from '../journal/journal.js';
import { runOptionsOf, withJournaledRun, type RunOptions } from '../journal/run.js';
import { CASE_REFERENCES, referenceOfTable, type CaseReference, type ReferencingTable } from '../references.js';
import { quarantine } from '../schema/journal.js';
import { listQuarantine, toRow, type QuarantinedRow } from './quarantine.js';

/** Entries put back per statement. */
export const RESTORE_PAGE = 5000;
/** Rows left out that a result names (the count is always exact). */
const NAMED = 100;

export interface RestoreOutcome {
  quarantineId: number;
  sourceTable: ReferencingTable;
  restored: boolean;
  /** Why a row was not restored. */
  reason?: string;
}

/** What a restore did: exact counts, and (at most 100) the rows left out with why. */
export interface RestoreSummary {
  total: number;
  restored: number;
  notRestored: RestoreOutcome[];
  notRestoredCount: number;
}

export interface RestorePlan {
  sourceRun: number;
  /** Rows of the run still quarantined. */
  waiting: number;
  blockers: Blocker[];
}

export interface RestoreResult {
  /** The restore's own run. */
  runId: number;
  /** The rows left out, with why (at most 100; notRestored is the exact count). */
  outcomes: RestoreOutcome[];
  restored: number;
  notRestored: number;
}

const WHAT = 'caseguard quarantine restore';

/** The plan: how many of the run's rows wait; a usage error when none does (where the server could take a restore at all). */
export async function planRestore(database: Database, shape: DatabaseShape, sourceRun: number): Promise<RestorePlan> {
  const blockers = await runBlockers(database, WHAT);
  const waiting = shape.hasJournal ? (await listQuarantine(database.db, { runId: sourceRun, includeRestored: false, limit: 0 })).total : 0;
  if (waiting === 0 && blockers.length === 0) {
    const any = shape.hasJournal ? (await listQuarantine(database.db, { runId: sourceRun, includeRestored: true, limit: 0 })).total : 0;
    throw new UsageError(any > 0 ? `every row run ${sourceRun} quarantined is already restored` : `run ${sourceRun} quarantined no rows`);
  }
  return { sourceRun, waiting, blockers };
}

/** Puts back the rows the run quarantined that are not back yet, a page per transaction. */
export async function applyRestore(database: Database, plan: RestorePlan, options: RunOptions): Promise<RestoreResult> {
  assertUnblocked(plan);
  const summary = emptySummary();
  return withJournaledRun(
    database,
    {
      ...runOptionsOf(options),
      command: 'quarantine restore',
      options: { run: plan.sourceRun },
    },
    (run) =>
      run.withSession(async (session) => {
        const pages = CASE_REFERENCES.map((ref) => ({ ref, after: 0 as number | undefined }));
        let at = 0;
        await run.batches(async () => {
          while (at < pages.length && pages[at]!.after === undefined) at++;
          const page = pages[at];
          if (!page) return false;
          const before = { total: summary.total, restored: summary.restored };
          page.after = await session.transaction((tx) => restorePage(tx, page.ref, plan.sourceRun, run.id, page.after!, summary));
          if (page.after !== undefined) {
            run.log.info({
              event: 'restore.page_committed',
              table: page.ref.table,
              rows: summary.total - before.total,
              restored: summary.restored - before.restored,
            });
          }
          Object.assign(run.counts, { restored: summary.restored, not_restored: summary.notRestoredCount });
          return true;
        });
        const partial = summary.notRestoredCount > 0;
        return {
          status: partial ? 'partial' : 'completed',
          reason: partial
            ? `${summary.notRestoredCount} row(s) not restored: a row with the same key exists now, or the value no longer fits`
            : undefined,
          value: { runId: run.id, outcomes: summary.notRestored, restored: summary.restored, notRestored: summary.notRestoredCount },
        };
      }),
  );
}

/** Every row the run quarantined that is not back yet, inside the caller's transaction (an undo: all or nothing). */
export async function restoreAll(tx: Tx, sourceRun: number, byRun: number): Promise<RestoreSummary> {
  const summary = emptySummary();
  for (const ref of CASE_REFERENCES) {
    for (let after: number | undefined = 0; after !== undefined;) after = await restorePage(tx, ref, sourceRun, byRun, after, summary);
  }
  return summary;
}

const emptySummary = (): RestoreSummary => ({ total: 0, restored: 0, notRestored: [], notRestoredCount: 0 });

/** A quarantined row's key, from its jsonb copy, as the INSERT's RETURNING spells it. */
function keyOfCopy(ref: CaseReference, row: SQL): SQL {
  return sql`jsonb_build_object(${sql.join(
    ref.key.map((k) => sql`${k.name}::text, (${row}->>${k.name})::${sql.raw(k.type)}`),
    sql`, `,
  )})::text`;
}

/** A live row's key. */
function keyOfRow(ref: CaseReference): SQL {
  return sql`jsonb_build_object(${sql.join(
    ref.key.map((k) => sql`${k.name}::text, ${sql.identifier(k.name)}::${sql.raw(k.type)}`),
    sql`, `,
  )})::text`;
}

/**
 * One page of a table's entries after quarantine id `after`, in the caller's transaction;
 * returns the page's last id, or undefined when the table has no more. Where the page's INSERT
 * fails (a value no longer fits its column), the page goes row by row behind savepoints.
 */
async function restorePage(
  tx: Tx,
  ref: CaseReference,
  sourceRun: number,
  byRun: number,
  after: number,
  summary: RestoreSummary,
): Promise<number | undefined> {
  const target = sql`mega_agent.${sql.identifier(ref.table)}`;
  const seqscan = await indexedReads(tx);
  try {
    let page: { taken: Array<[number, string]>; inserted: string[] };
    try {
      page = (
        await tx.transaction((sp) =>
          sp.execute<{ taken: Array<[number, string]>; inserted: string[] }>(sql`
            WITH q AS (
              SELECT quarantine_id, row_data, ${keyOfCopy(ref, sql`row_data`)} AS k FROM caseguard.quarantine
               WHERE run_id = ${sourceRun} AND quarantine_id > ${after} AND source_table = ${ref.table} AND restored_at IS NULL
               ORDER BY run_id, quarantine_id LIMIT ${RESTORE_PAGE}
            ),
            ins AS (
              INSERT INTO ${target} ${ref.identityKey ? sql`OVERRIDING SYSTEM VALUE` : sql``}
              SELECT (jsonb_populate_record(NULL::${target}, q.row_data)).* FROM q ORDER BY q.quarantine_id
              ON CONFLICT DO NOTHING
              RETURNING ${keyOfRow(ref)} AS k
            )
            SELECT (SELECT coalesce(json_agg(json_build_array(quarantine_id, k) ORDER BY quarantine_id), '[]') FROM q) AS taken,
                   (SELECT coalesce(json_agg(k), '[]') FROM ins) AS inserted`),
        )
      ).rows[0]!;
    } catch (error) {
      if (!sqlStateOf(error)) throw error;
      return await restoreOneByOne(tx, ref, sourceRun, byRun, after, summary);
    }
    if (page.taken.length === 0) return undefined;
    // An entry is back where the INSERT wrote its key (each key once: the first entry took it).
    const written = new Set(page.inserted);
    const restored: number[] = [];
    for (const [id, key] of page.taken) {
      if (written.delete(key)) restored.push(Number(id));
      else
        leftOut(summary, {
          quarantineId: Number(id),
          sourceTable: ref.table,
          restored: false,
          reason: 'a row with the same key exists now',
        });
    }
    if (restored.length > 0) await markRestored(tx, ref.table, restored, byRun);
    summary.total += page.taken.length;
    summary.restored += restored.length;
    return Number(page.taken[page.taken.length - 1]![0]);
  } finally {
    await tx.execute(sql`SELECT set_config('enable_seqscan', ${seqscan}, true)`);
  }
}

/** Reads through indexes from here on in this transaction; returns the setting to put back. */
async function indexedReads(tx: Tx): Promise<string> {
  const r = await tx.execute<{ was: string }>(
    sql`SELECT current_setting('enable_seqscan') AS was, set_config('enable_seqscan', 'off', true)`,
  );
  return r.rows[0]!.was;
}

/** Marks entries restored by primary key, journaling each as a 'restored' item of the restoring run. */
async function markRestored(tx: Executor, table: ReferencingTable, ids: number[], byRun: number): Promise<void> {
  await tx.execute(sql`
    WITH done AS (
      UPDATE caseguard.quarantine x SET restored_at = now(), restored_by_run = ${byRun}
       WHERE x.quarantine_id = ANY(${`{${ids.join(',')}}`}::bigint[])
      RETURNING x.quarantine_id, x.reason, x.row_data
    )
    ${INSERT_ITEMS}
    SELECT ${byRun}, 'restored', reason, ${table}, jsonb_build_object('quarantine_id', quarantine_id), NULL, row_data FROM done`);
}

function leftOut(summary: RestoreSummary, outcome: RestoreOutcome): void {
  summary.notRestoredCount++;
  if (summary.notRestored.length < NAMED) summary.notRestored.push(outcome);
}

/** One page row by row behind savepoints, each failure reported with its reason. */
async function restoreOneByOne(
  tx: Tx,
  ref: CaseReference,
  sourceRun: number,
  byRun: number,
  after: number,
  summary: RestoreSummary,
): Promise<number | undefined> {
  const page = await tx
    .select()
    .from(quarantine)
    .where(
      and(
        eq(quarantine.runId, sourceRun),
        eq(quarantine.sourceTable, ref.table),
        isNull(quarantine.restoredAt),
        gt(quarantine.quarantineId, after),
      ),
    )
    .orderBy(quarantine.runId, quarantine.quarantineId)
    .limit(RESTORE_PAGE);
  if (page.length === 0) return undefined;
  for (const row of page.map(toRow)) {
    summary.total++;
    const outcome = await restoreOne(tx, row, byRun);
    if (outcome.restored) summary.restored++;
    else leftOut(summary, outcome);
  }
  return page[page.length - 1]!.quarantineId;
}

/**
 * Puts one quarantined row back, inside the caller's transaction, behind a savepoint: a row
 * that cannot go back (its key is taken, or its value no longer fits the column) is reported.
 */
export async function restoreOne(tx: Tx, row: QuarantinedRow, byRun: number): Promise<RestoreOutcome> {
  const ref = referenceOfTable(row.sourceTable);
  const outcome = { quarantineId: row.quarantineId, sourceTable: row.sourceTable };
  if (!ref) return { ...outcome, restored: false, reason: `unknown table ${row.sourceTable}` };
  const target = sql`mega_agent.${sql.identifier(ref.table)}`;
  try {
    const inserted = await tx.transaction(async (sp) =>
      sp.execute(sql`
        INSERT INTO ${target} ${ref.identityKey ? sql`OVERRIDING SYSTEM VALUE` : sql``}
        SELECT (jsonb_populate_record(NULL::${target}, ${JSON.stringify(row.rowData)}::jsonb)).*
        ON CONFLICT DO NOTHING
        RETURNING 1`),
    );
    if (inserted.rows.length === 0) return { ...outcome, restored: false, reason: 'a row with the same key exists now' };
  } catch (error) {
    return { ...outcome, restored: false, reason: describePgError(error) };
  }
  await markRestored(tx, ref.table, [row.quarantineId], byRun);
  return { ...outcome, restored: true };
}
