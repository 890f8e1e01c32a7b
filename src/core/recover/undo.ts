/**
 * recover --undo RUN: deletes the cases that run created, restores the spellings it changed
 * and puts back the rows it quarantined; all in one transaction, and only when it is safe:
 * nothing has touched those cases since, no cascading foreign key would delete data with them,
 * and every changed value is still what the run left. Otherwise it refuses and says why.
 */
import { sql, type SQL } from 'drizzle-orm';
import type { Database, Tx } from '../db/database.js';
import type { DatabaseShape } from '../db/inspect.js';
import { runBlockers } from '../db/locks.js';
import { assertUnblocked, BusyError, ExitCode, InterruptedError, UsageError, type Blocker } from '../errors.js';
import { getRun, INSERT_ITEMS } from '../journal/journal.js';
import { runOptionsOf, withJournaledRun, type RunOptions } from '../journal/run.js';
import { listQuarantine } from './quarantine.js';
import { restoreAll } from './restore.js';

const WHAT = 'caseguard recover --undo';

/** What undoing a run would do, read without writing; its blockers say why it cannot be done here. */
export interface UndoPlan {
  undoneRun: number;
  /** When the undone run started: what "touched since" is measured from. */
  startedAt: string;
  /** What the undo does: "5 case(s) to delete, 8 spelling(s) to restore, 7 quarantined row(s) to put back". */
  summary: string;
  casesToDelete: number;
  spellingsToRestore: number;
  rowsToPutBack: number;
  /** Why it cannot be undone (not safely, or not on this server); empty when it can. */
  blockers: Blocker[];
}

export interface UndoResult {
  /** The undo's own run. */
  runId: number;
  undoneRun: number;
  summary: string;
  casesDeleted: number;
  spellingsRestored: number;
  rowsRestored: number;
}

/**
 * The cases a run created, from its journal: one item per batch (case_ids, and the xmin the
 * batch wrote them with) or, journaled before migration 0004, one item per case with its row.
 */
function createdCases(runId: number): SQL {
  return sql`
    SELECT (i.row_key->>'case_id')::uuid AS case_id, i.after, NULL::text AS xmin
      FROM caseguard.run_items i WHERE i.run_id = ${runId} AND i.action = 'case_created' AND i.case_ids IS NULL
    UNION ALL
    SELECT id, NULL::jsonb, i.after->>'xmin'
      FROM caseguard.run_items i CROSS JOIN LATERAL unnest(i.case_ids) AS id
     WHERE i.run_id = ${runId} AND i.action = 'case_created' AND i.case_ids IS NOT NULL`;
}

/**
 * Why the run cannot be undone safely, as set-based queries over its journal (a run may have
 * created a hundred thousand cases); empty when it can. At most 20 reasons.
 */
async function refusals(tx: Tx, shape: DatabaseShape, runId: number, startedAt: string): Promise<string[]> {
  const cascade = shape.foreignKey?.onDeleteCascade ?? false;
  // Compared in the column's own type, so an index on it serves (text before fk add, uuid after).
  const memoryOf = shape.memoryUuid ? sql`m.case_id = cr.case_id::uuid` : sql`m.case_id = cr.case_id`;
  const pointerOf = shape.pointerUuid ? sql`b.active_case_id = cr.case_id::uuid` : sql`b.active_case_id = cr.case_id`;
  const memorySince = shape.hasMemory
    ? sql`EXISTS (SELECT 1 FROM mega_agent.case_memory m WHERE ${memoryOf} AND m.created_at > ${startedAt}::timestamptz)`
    : sql`false`;
  // An active-case pointer the bot set since the run (an /intake_resume) would dangle again.
  const pointerSince = shape.hasUserContext
    ? sql`EXISTS (SELECT 1 FROM mega_agent.bot_user_context b WHERE ${pointerOf} AND b.updated_at > ${startedAt}::timestamptz)`
    : sql`false`;
  // With their foreign keys (a uuid column), deleting the case would delete memory or clear
  // pointers instead of leaving them as they were before the run.
  const throughForeignKeys = sql`${shape.memoryUuid ? sql`EXISTS (SELECT 1 FROM mega_agent.case_memory m WHERE ${memoryOf})` : sql`false`}
    OR ${shape.pointerUuid ? sql`EXISTS (SELECT 1 FROM mega_agent.bot_user_context b WHERE ${pointerOf})` : sql`false`}`;
  const cases = await tx.execute<{
    case_id: string;
    gone: boolean;
    changed: boolean;
    touched: boolean;
    refs: string;
    fk_refs: boolean;
  }>(sql`
    WITH created AS (
      SELECT c.case_id::text AS case_id, c.after, c.xmin FROM (${createdCases(runId)}) c
    ),
    refs AS (
      SELECT p.case_id::text AS case_id, count(*) AS n, bool_or(p.updated_at > ${startedAt}::timestamptz) AS since
        FROM mega_agent.case_intake_progress p JOIN created cr ON p.case_id::text = cr.case_id
       GROUP BY p.case_id
    ),
    checked AS (
      SELECT cr.case_id, c.case_id IS NULL AS gone,
             -- any write makes a new row version with a new xmin; old journals kept the whole row
             c.case_id IS NOT NULL AND CASE WHEN cr.xmin IS NOT NULL THEN c.xmin::text <> cr.xmin ELSE to_jsonb(c) IS DISTINCT FROM cr.after END AS changed,
             coalesce(r.since, false) OR ${memorySince} OR ${pointerSince} AS touched,
             coalesce(r.n, 0) AS refs,
             ${throughForeignKeys} AS fk_refs
        FROM created cr
        LEFT JOIN mega_agent.cases c ON c.case_id = cr.case_id::uuid
        LEFT JOIN refs r ON r.case_id = cr.case_id
    )
    SELECT * FROM checked WHERE gone OR changed OR touched OR (${cascade} AND refs > 0) OR fk_refs ORDER BY case_id LIMIT 20`);
  const problems = cases.rows.map((r) =>
    r.gone
      ? `case ${r.case_id} is gone already`
      : r.changed
        ? `case ${r.case_id} was changed since the run`
        : r.touched
          ? `case ${r.case_id} has progress, memory or an active-case pointer written since the run`
          : r.fk_refs && !(cascade && Number(r.refs) > 0)
            ? `deleting case ${r.case_id} would delete its memory or clear active-case pointers through their foreign keys`
            : `deleting case ${r.case_id} would cascade to ${r.refs} progress row(s) through ${shape.foreignKey!.name}`,
  );
  const spellings = await tx.execute<{ table_name: string; key: string }>(sql`
    SELECT i.table_name, i.row_key::text AS key FROM caseguard.run_items i
     WHERE i.run_id = ${runId} AND i.action = 'spelling_changed' AND NOT CASE i.table_name
       WHEN 'case_intake_progress' THEN EXISTS (SELECT 1 FROM mega_agent.case_intake_progress p
              WHERE p.user_id = i.row_key->>'user_id' AND p.case_id::text = i.row_key->>'case_id')
       ${
         shape.hasMemory
           ? sql`WHEN 'case_memory' THEN EXISTS (SELECT 1 FROM mega_agent.case_memory m
              WHERE m.memory_id = (i.row_key->>'memory_id')::bigint AND m.case_id::text = i.after->>'case_id')`
           : sql``
       }
       ${
         shape.hasUserContext
           ? sql`WHEN 'bot_user_context' THEN EXISTS (SELECT 1 FROM mega_agent.bot_user_context b
              WHERE b.user_id = i.row_key->>'user_id' AND b.active_case_id::text = i.after->>'active_case_id')`
           : sql``
       }
       ELSE false END
     ORDER BY i.item_id LIMIT 20`);
  problems.push(...spellings.rows.map((r) => `${r.table_name} ${r.key} was changed since the run`));
  if (shape.shape === 'uuid') {
    const progressSpellings = await tx.execute(sql`
      SELECT 1 FROM caseguard.run_items WHERE run_id = ${runId} AND action = 'spelling_changed' AND table_name = 'case_intake_progress' LIMIT 1`);
    if (progressSpellings.rows.length > 0) problems.push('progress.case_id is uuid now: the original spellings cannot be stored again');
  }
  for (const [table, uuid] of [
    ['case_memory', shape.memoryUuid],
    ['bot_user_context', shape.pointerUuid],
  ] as const) {
    if (!uuid) continue;
    const changed = await tx.execute(sql`
      SELECT 1 FROM caseguard.run_items WHERE run_id = ${runId} AND action = 'spelling_changed' AND table_name = ${table} LIMIT 1`);
    if (changed.rows.length > 0) problems.push(`${table}'s column is uuid now: the original spellings cannot be stored again`);
  }
  return problems.slice(0, 20);
}

/** Puts every spelling the run changed back, one statement per table. */
async function restoreSpellings(tx: Tx, shape: DatabaseShape, runId: number): Promise<number> {
  const items = sql`caseguard.run_items i WHERE i.run_id = ${runId} AND i.action = 'spelling_changed'`;
  let restored = 0;
  restored +=
    (
      await tx.execute(sql`
    UPDATE mega_agent.case_intake_progress p SET case_id = i.before->>'case_id' FROM ${items} AND i.table_name = 'case_intake_progress'
       AND p.user_id = i.row_key->>'user_id' AND p.case_id::text = i.row_key->>'case_id'`)
    ).rowCount ?? 0;
  if (shape.hasMemory) {
    restored +=
      (
        await tx.execute(sql`
      UPDATE mega_agent.case_memory m SET case_id = i.before->>'case_id' FROM ${items} AND i.table_name = 'case_memory'
         AND m.memory_id = (i.row_key->>'memory_id')::bigint`)
      ).rowCount ?? 0;
  }
  if (shape.hasUserContext) {
    restored +=
      (
        await tx.execute(sql`
      UPDATE mega_agent.bot_user_context b SET active_case_id = i.before->>'active_case_id' FROM ${items} AND i.table_name = 'bot_user_context'
         AND b.user_id = i.row_key->>'user_id'`)
      ).rowCount ?? 0;
  }
  return restored;
}

/**
 * The undo's plan, read-only: the run must exist, be a finished real recover run not undone
 * yet (a usage error, exit 2, otherwise; exit 5 while it runs); the safety checks read in one
 * READ ONLY REPEATABLE READ transaction become its blockers.
 */
export async function planUndo(database: Database, shape: DatabaseShape, undoneRun: number): Promise<UndoPlan> {
  const original = shape.hasJournal ? await getRun(database.db, undoneRun) : undefined;
  if (!original) throw new UsageError(`there is no run ${undoneRun}; see caseguard runs`);
  if (original.command !== 'recover') {
    throw new UsageError(`run ${undoneRun} is a ${original.command} run; only recover runs can be undone`);
  }
  if (original.dryRun) throw new UsageError(`run ${undoneRun} was a dry run; it changed nothing`);
  if (original.status === 'running') throw new BusyError(`run ${undoneRun} is still running; undo it once it has ended`);
  if (original.options.undoneBy) throw new UsageError(`run ${undoneRun} was undone already by run ${String(original.options.undoneBy)}`);
  const itemsOf = (action: string) => original.items.filter((i) => i.action === action).reduce((n, i) => n + i.count, 0);
  const blockers = await runBlockers(database, WHAT);
  const { unsafe, rowsToPutBack } = await database.db.transaction(
    async (tx) => ({
      unsafe: await safetyRefusal(tx, shape, undoneRun, original.startedAt),
      rowsToPutBack: await quarantinedBy(tx, undoneRun),
    }),
    { isolationLevel: 'repeatable read', accessMode: 'read only' },
  );
  if (unsafe) blockers.unshift({ reason: unsafe, exitCode: ExitCode.usage });
  const casesToDelete = itemsOf('case_created');
  const spellingsToRestore = itemsOf('spelling_changed');
  return {
    undoneRun,
    startedAt: original.startedAt,
    summary: `${casesToDelete} case(s) to delete, ${spellingsToRestore} spelling(s) to restore, ${rowsToPutBack} quarantined row(s) to put back`,
    casesToDelete,
    spellingsToRestore,
    rowsToPutBack,
    blockers,
  };
}

/**
 * Undoes the run in one transaction on the run's own session, after the safety checks again in
 * that transaction (the database may have moved since the plan). A stop request cancels the
 * statement in hand at once: the transaction rolls back whole, nothing changed.
 */
export async function applyUndo(database: Database, shape: DatabaseShape, plan: UndoPlan, options: RunOptions): Promise<UndoResult> {
  assertUnblocked(plan);
  const undone = plan.undoneRun;
  return withJournaledRun(
    database,
    { ...runOptionsOf(options), command: 'recover --undo', options: { undo: undone }, unit: 'step' },
    async (run) => {
      await run.checkpoint('before it began');
      const counts = { casesDeleted: 0, spellingsRestored: 0, rowsRestored: 0 };
      try {
        await run.withSession(
          (session) =>
            session.transaction(async (tx) => {
              const unsafe = await safetyRefusal(tx, shape, undone, plan.startedAt);
              if (unsafe) throw new UsageError(unsafe);
              counts.spellingsRestored = await restoreSpellings(tx, shape, undone);
              const restored = await restoreAll(tx, undone, run.id);
              if (restored.notRestoredCount > 0) {
                const first = restored.notRestored[0]!;
                throw new UsageError(
                  `cannot undo run ${undone}: ${restored.notRestoredCount} quarantined row(s) cannot go back (quarantine ${first.quarantineId}: ${first.reason}); nothing was changed`,
                );
              }
              counts.rowsRestored = restored.restored;
              counts.casesDeleted = await deleteCreatedCases(tx, undone, run.id);
            }),
          { cancel: 'at-once' },
        );
      } catch (error) {
        if (options.signal?.aborted && !(error instanceof UsageError)) {
          throw new InterruptedError(`undo of run ${undone} interrupted; its transaction was rolled back: nothing was changed`, {
            cause: error,
          });
        }
        throw error;
      }
      Object.assign(run.counts, counts);
      return { status: 'completed', value: { runId: run.id, undoneRun: undone, summary: plan.summary, ...counts } };
    },
  );
}

/** Why undoing the run is not safe now, in one sentence; undefined when it is. */
async function safetyRefusal(tx: Tx, shape: DatabaseShape, undoneRun: number, startedAt: string): Promise<string | undefined> {
  const problems = await refusals(tx, shape, undoneRun, startedAt);
  if (problems.length === 0) return undefined;
  return `cannot undo run ${undoneRun} safely: ${problems.slice(0, 5).join('; ')}${problems.length > 5 ? `; and ${problems.length - 5} more` : ''}`;
}

async function quarantinedBy(tx: Tx, runId: number): Promise<number> {
  return (await listQuarantine(tx, { runId, includeRestored: false, limit: 0 })).total;
}

/** Deletes the cases the run created (journaling each), and marks the run undone; returns how many. */
async function deleteCreatedCases(tx: Tx, undoneRun: number, runId: number): Promise<number> {
  const deleted = await tx.execute(sql`
    WITH del AS (
      DELETE FROM mega_agent.cases c
       USING (${createdCases(undoneRun)}) cr
       WHERE c.case_id = cr.case_id
      RETURNING c.case_id, to_jsonb(c) AS row_data
    )
    ${INSERT_ITEMS}
    SELECT ${runId}, 'case_deleted', NULL, 'cases', jsonb_build_object('case_id', case_id), row_data, NULL FROM del
    RETURNING 1`);
  await tx.execute(
    sql`UPDATE caseguard.runs SET options = options || jsonb_build_object('undoneBy', ${runId}::bigint) WHERE run_id = ${undoneRun}`,
  );
  return deleted.rows.length;
}
