/**
 * recover --undo RUN: deletes the cases that run created, restores the spellings it changed
 * and puts back the rows it quarantined; all in one transaction, and only when it is safe:
 * nothing has touched those cases since, no cascading foreign key would delete data with them,
 * and every changed value is still what the run left. Otherwise it refuses and says why.
 */
import { sql, type SQL } from 'drizzle-orm';
import type { Database, Tx } from '../db/database.js';
import type { DatabaseShape } from '../db/inspect.js';
import { withRunLock } from '../db/locks.js';
import { ensureJournalSchema } from '../db/migrate.js';
import { describePgError } from '../db/sqlstate.js';
import { BusyError, InterruptedError, UsageError } from '../errors.js';
import { finishRun, getRun, startRun } from '../journal/journal.js';
import { listQuarantine, restoreAll } from './quarantine.js';

export interface UndoResult {
  /** The undo's own run; null for a dry run, which journals nothing. */
  runId: number | null;
  undoneRun: number;
  dryRun: boolean;
  /** What the undo does (or, dry, would do). */
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

export async function undoRun(
  database: Database,
  shape: DatabaseShape,
  undoneRun: number,
  options: { dryRun: boolean; confirm?: (summary: string) => Promise<boolean>; signal?: AbortSignal; lockWaitMs?: number },
): Promise<UndoResult> {
  const original = shape.hasJournal ? await getRun(database.db, undoneRun) : undefined;
  if (!original) throw new UsageError(`there is no run ${undoneRun}; see caseguard runs`);
  if (original.command !== 'recover')
    throw new UsageError(`run ${undoneRun} is a ${original.command} run; only recover runs can be undone`);
  if (original.dryRun) throw new UsageError(`run ${undoneRun} was a dry run; it changed nothing`);
  if (original.status === 'running') throw new BusyError(`run ${undoneRun} is still running; undo it once it has ended`);
  if (original.options.undoneBy) throw new UsageError(`run ${undoneRun} was undone already by run ${String(original.options.undoneBy)}`);

  /** The safety checks and what the undo would do; throws UsageError when it is not safe. */
  const inspect = async (tx: Tx) => {
    const problems = await refusals(tx, shape, undoneRun, original.startedAt);
    if (problems.length > 0) {
      throw new UsageError(
        `cannot undo run ${undoneRun} safely: ${problems.slice(0, 5).join('; ')}${problems.length > 5 ? `; and ${problems.length - 5} more` : ''}`,
      );
    }
    const quarantined = (await listQuarantine(tx, { runId: undoneRun, includeRestored: false, limit: 0 })).total;
    const itemsOf = (action: string) => original.items.filter((i) => i.action === action).reduce((n, i) => n + i.count, 0);
    const summary = `${itemsOf('case_created')} case(s) to delete, ${itemsOf('spelling_changed')} spelling(s) to restore, ${quarantined} quarantined row(s) to put back`;
    return { quarantined, summary };
  };
  const counts = { casesDeleted: 0, spellingsRestored: 0, rowsRestored: 0 };
  if (options.dryRun) {
    const { summary } = await database.db.transaction(inspect, { isolationLevel: 'repeatable read', accessMode: 'read only' });
    return { runId: null, undoneRun, dryRun: true, summary, ...counts };
  }

  return withRunLock(database, { what: 'caseguard recover --undo', waitMs: options.lockWaitMs, signal: options.signal }, async (lock) => {
    await ensureJournalSchema(database.pool);
    const runId = await startRun(database.db, {
      command: 'recover --undo',
      options: { undo: undoneRun },
      dryRun: false,
      process: database.identity,
    });
    let summary = '';
    try {
      await database.db.transaction(async (tx) => {
        const inspected = await inspect(tx);
        summary = inspected.summary;
        if (options.confirm && !(await options.confirm(summary)))
          throw new UsageError('declined at the confirmation prompt; nothing was changed');
        await lock.assertHeld();
        // SIGINT cancels the statement in hand; the transaction rolls back whole.
        const stopCancelling = await cancelOnAbort(database, tx, options.signal);
        const step = () => {
          if (options.signal?.aborted) throw new InterruptedError(`undo of run ${undoneRun} interrupted`);
        };
        try {
          step();
          counts.spellingsRestored = await restoreSpellings(tx, shape, undoneRun);
          step();
          const restored = await restoreAll(tx, undoneRun, runId);
          if (restored.notRestoredCount > 0) {
            const first = restored.notRestored[0]!;
            throw new UsageError(
              `cannot undo run ${undoneRun}: ${restored.notRestoredCount} quarantined row(s) cannot go back (quarantine ${first.quarantineId}: ${first.reason}); nothing was changed`,
            );
          }
          counts.rowsRestored = restored.restored;
          step();
          await deleteCreatedCases(tx, undoneRun, runId, counts);
        } finally {
          stopCancelling();
        }
      });
      await finishRun(database.db, runId, { status: 'completed', counts });
      return { runId, undoneRun, dryRun: false, summary, ...counts };
    } catch (error) {
      if (options.signal?.aborted) {
        const interrupted = new InterruptedError(
          `undo of run ${undoneRun} interrupted; its transaction was rolled back: nothing was changed`,
          { cause: error },
        );
        await finishRun(database.db, runId, {
          status: 'interrupted',
          counts: { casesDeleted: 0, spellingsRestored: 0, rowsRestored: 0 },
          error: interrupted.message,
        });
        throw interrupted;
      }
      const refused = error instanceof UsageError;
      await finishRun(database.db, runId, {
        status: refused ? 'refused' : 'failed',
        counts,
        error: refused ? error.message : describePgError(error),
      });
      throw error;
    }
  });
}

/** Deletes the cases the run created (journaling each), and marks the run undone. */
async function deleteCreatedCases(tx: Tx, undoneRun: number, runId: number, counts: { casesDeleted: number }): Promise<void> {
  const deleted = await tx.execute(sql`
    WITH del AS (
      DELETE FROM mega_agent.cases c
       USING (${createdCases(undoneRun)}) cr
       WHERE c.case_id = cr.case_id
      RETURNING c.case_id, to_jsonb(c) AS row_data
    )
    INSERT INTO caseguard.run_items (run_id, action, check_id, table_name, row_key, before, after)
    SELECT ${runId}, 'case_deleted', NULL, 'cases', jsonb_build_object('case_id', case_id), row_data, NULL FROM del
    RETURNING 1`);
  counts.casesDeleted = deleted.rows.length;
  await tx.execute(
    sql`UPDATE caseguard.runs SET options = options || jsonb_build_object('undoneBy', ${runId}::bigint) WHERE run_id = ${undoneRun}`,
  );
}

/**
 * On abort, cancels whatever statement the transaction's backend runs (pg_cancel_backend from
 * another pool connection); returns the function that stops watching.
 */
async function cancelOnAbort(database: Database, tx: Tx, signal: AbortSignal | undefined): Promise<() => void> {
  if (!signal) return () => undefined;
  const pid = Number((await tx.execute<{ pid: number }>(sql`SELECT pg_backend_pid() AS pid`)).rows[0]!.pid);
  const onAbort = () => void database.pool.query('SELECT pg_cancel_backend($1)', [pid]).catch(() => undefined);
  if (signal.aborted) onAbort();
  signal.addEventListener('abort', onAbort, { once: true });
  return () => signal.removeEventListener('abort', onAbort);
}
