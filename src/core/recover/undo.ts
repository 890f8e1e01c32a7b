/**
 * recover --undo RUN: deletes the cases that run created, restores the spellings it changed
 * and puts back the rows it quarantined; all in one transaction, and only when it is safe:
 * nothing has touched those cases since, no cascading foreign key would delete data with them,
 * and every changed value is still what the run left. Otherwise it refuses and says why.
 */
import { sql } from 'drizzle-orm';
import type { Database, Tx } from '../db/database.js';
import type { DatabaseShape } from '../db/inspect.js';
import { LockKey, withClient, withTryAdvisoryLock } from '../db/locks.js';
import { ensureJournalSchema } from '../db/migrate.js';
import { describePgError } from '../db/sqlstate.js';
import { UsageError } from '../errors.js';
import { finishRun, getRun, startRun } from '../journal/journal.js';
import { listQuarantine, restoreOne } from './quarantine.js';

export interface UndoResult {
  runId: number;
  undoneRun: number;
  dryRun: boolean;
  /** What the undo does (or, dry, would do). */
  summary: string;
  casesDeleted: number;
  spellingsRestored: number;
  rowsRestored: number;
}

interface Item {
  item_id: string;
  action: string;
  table_name: string;
  row_key: Record<string, unknown>;
  before: Record<string, unknown> | null;
  after: Record<string, unknown> | null;
  [key: string]: unknown;
}

/** Why each item cannot be undone; empty when all can. */
async function refusals(tx: Tx, shape: DatabaseShape, startedAt: string, items: Item[]): Promise<string[]> {
  const problems: string[] = [];
  const cascade = shape.foreignKey?.onDeleteCascade ?? false;
  for (const item of items) {
    if (problems.length >= 20) break;
    if (item.action === 'case_created') {
      const caseId = String(item.row_key.case_id);
      const now = await tx.execute<{ same: boolean | null }>(sql`
        SELECT to_jsonb(c) = ${JSON.stringify(item.after)}::jsonb AS same FROM mega_agent.cases c WHERE c.case_id = ${caseId}::uuid`);
      if (now.rows.length === 0) problems.push(`case ${caseId} is gone already`);
      else if (!now.rows[0]!.same) problems.push(`case ${caseId} was changed since the run`);
      const touched = await tx.execute<{ n: string }>(sql`
        SELECT (SELECT count(*) FROM mega_agent.case_intake_progress p WHERE p.case_id::text = ${caseId} AND p.updated_at > ${startedAt}::timestamptz)
             + ${shape.hasMemory ? sql`(SELECT count(*) FROM mega_agent.case_memory m WHERE m.case_id = ${caseId} AND m.created_at > ${startedAt}::timestamptz)` : sql`0`} AS n`);
      if (Number(touched.rows[0]!.n) > 0) problems.push(`case ${caseId} has progress or memory written since the run`);
      if (cascade) {
        const refs = await tx.execute<{ n: string }>(sql`SELECT count(*) AS n FROM mega_agent.case_intake_progress p WHERE p.case_id::text = ${caseId}`);
        if (Number(refs.rows[0]!.n) > 0) {
          problems.push(`deleting case ${caseId} would cascade to ${refs.rows[0]!.n} progress row(s) through ${shape.foreignKey!.name}`);
        }
      }
    } else if (item.action === 'spelling_changed') {
      if (item.table_name === 'case_intake_progress' && shape.shape === 'uuid') {
        problems.push('progress.case_id is uuid now: the original spellings cannot be stored again');
        continue;
      }
      const current = await currentSpelling(tx, item);
      if (current !== item.after?.case_id && current !== item.after?.active_case_id) {
        problems.push(`${item.table_name} ${JSON.stringify(item.row_key)} was changed since the run`);
      }
    }
  }
  return problems;
}

async function currentSpelling(tx: Tx, item: Item): Promise<string | undefined> {
  const key = item.row_key;
  const result =
    item.table_name === 'case_intake_progress'
      ? await tx.execute<{ v: string }>(sql`SELECT case_id::text AS v FROM mega_agent.case_intake_progress WHERE user_id = ${key.user_id} AND case_id::text = ${key.case_id}`)
      : item.table_name === 'case_memory'
        ? await tx.execute<{ v: string }>(sql`SELECT case_id AS v FROM mega_agent.case_memory WHERE memory_id = ${key.memory_id}`)
        : await tx.execute<{ v: string }>(sql`SELECT active_case_id AS v FROM mega_agent.bot_user_context WHERE user_id = ${key.user_id}`);
  return result.rows[0]?.v;
}

async function restoreSpelling(tx: Tx, item: Item): Promise<void> {
  const key = item.row_key;
  if (item.table_name === 'case_intake_progress') {
    await tx.execute(sql`UPDATE mega_agent.case_intake_progress SET case_id = ${item.before!.case_id}
                          WHERE user_id = ${key.user_id} AND case_id = ${key.case_id}`);
  } else if (item.table_name === 'case_memory') {
    await tx.execute(sql`UPDATE mega_agent.case_memory SET case_id = ${item.before!.case_id} WHERE memory_id = ${key.memory_id}`);
  } else {
    await tx.execute(sql`UPDATE mega_agent.bot_user_context SET active_case_id = ${item.before!.active_case_id} WHERE user_id = ${key.user_id}`);
  }
}

export async function undoRun(
  database: Database,
  shape: DatabaseShape,
  undoneRun: number,
  options: { dryRun: boolean; confirm?: (summary: string) => Promise<boolean> },
): Promise<UndoResult> {
  await ensureJournalSchema(database.pool);
  const original = await getRun(database.db, undoneRun);
  if (!original) throw new UsageError(`there is no run ${undoneRun}; see caseguard runs`);
  if (original.command !== 'recover') throw new UsageError(`run ${undoneRun} is a ${original.command} run; only recover runs can be undone`);
  if (original.dryRun) throw new UsageError(`run ${undoneRun} was a dry run; it changed nothing`);
  if (original.options.undoneBy) throw new UsageError(`run ${undoneRun} was undone already by run ${String(original.options.undoneBy)}`);

  return withClient(database.pool, (lockClient) =>
    withTryAdvisoryLock(lockClient, LockKey.recover, 'caseguard recover', async () => {
      const runId = await startRun(database.db, { command: 'recover --undo', options: { undo: undoneRun }, dryRun: options.dryRun });
      const counts = { casesDeleted: 0, spellingsRestored: 0, rowsRestored: 0 };
      let summary = '';
      try {
        await database.db.transaction(async (tx) => {
          const items = (
            await tx.execute<Item>(sql`
              SELECT item_id, action, table_name, row_key, before, after FROM caseguard.run_items
               WHERE run_id = ${undoneRun} ORDER BY item_id`)
          ).rows;
          const problems = await refusals(tx, shape, original.startedAt, items);
          if (problems.length > 0) {
            throw new UsageError(`cannot undo run ${undoneRun} safely: ${problems.slice(0, 5).join('; ')}${problems.length > 5 ? `; and ${problems.length - 5} more` : ''}`);
          }
          const quarantined = await listQuarantine(tx, { runId: undoneRun, includeRestored: false, limit: 1_000_000 });
          summary = `${items.filter((i) => i.action === 'case_created').length} case(s) to delete, ${items.filter((i) => i.action === 'spelling_changed').length} spelling(s) to restore, ${quarantined.rows.length} quarantined row(s) to put back`;
          if (options.dryRun) return;
          if (options.confirm && !(await options.confirm(summary))) throw new UsageError('declined at the confirmation prompt; nothing was changed');
          for (const item of items.filter((i) => i.action === 'spelling_changed').reverse()) {
            await restoreSpelling(tx, item);
            counts.spellingsRestored++;
          }
          for (const row of quarantined.rows) {
            const outcome = await restoreOne(tx, row, runId);
            if (!outcome.restored) throw new UsageError(`cannot undo run ${undoneRun}: quarantined row ${row.quarantineId} cannot go back (${outcome.reason})`);
            counts.rowsRestored++;
          }
          const created = items.filter((i) => i.action === 'case_created').map((i) => String(i.row_key.case_id));
          if (created.length > 0) {
            const deleted = await tx.execute(sql`
              WITH del AS (
                DELETE FROM mega_agent.cases WHERE case_id = ANY(ARRAY(SELECT jsonb_array_elements_text(${JSON.stringify(created)}::jsonb))::uuid[])
                RETURNING case_id, to_jsonb(cases) AS row_data
              )
              INSERT INTO caseguard.run_items (run_id, action, check_id, table_name, row_key, before, after)
              SELECT ${runId}, 'case_deleted', NULL, 'cases', jsonb_build_object('case_id', case_id), row_data, NULL FROM del
              RETURNING 1`);
            counts.casesDeleted = deleted.rows.length;
          }
          await tx.execute(sql`
            UPDATE caseguard.runs SET options = options || jsonb_build_object('undoneBy', ${runId}::bigint) WHERE run_id = ${undoneRun}`);
        });
        await finishRun(database.db, runId, { status: 'completed', counts });
        return { runId, undoneRun, dryRun: options.dryRun, summary, ...counts };
      } catch (error) {
        const refused = error instanceof UsageError;
        await finishRun(database.db, runId, { status: refused ? 'refused' : 'failed', counts, error: refused ? error.message : describePgError(error) });
        throw error;
      }
    }),
  );
}
