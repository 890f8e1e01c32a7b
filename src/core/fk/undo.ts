/**
 * Going back: `fk drop` removes the constraint (and with --revert-type returns case_id to text);
 * `fk abort` removes what a partial online run left before its swap (the sync trigger, the
 * NOT NULL check, the shadow column with its index, the trigger function), returning the table
 * to the shape it had before `fk add`.
 */
import type { Database } from '../db/database.js';
import { withClient, withRunLock } from '../db/locks.js';
import { ensureJournalSchema } from '../db/migrate.js';
import { describePgError } from '../db/sqlstate.js';
import { UsageError } from '../errors.js';
import { finishRun, startRun } from '../journal/journal.js';
import type { Logger } from '../logger.js';
import { runTransaction, type FkTiming } from './retry.js';
import { NAMES, quoted, readFkState, type FkState } from './state.js';

interface UndoOptions {
  timing: FkTiming;
  log: Logger;
  signal?: AbortSignal;
  lockWaitMs?: number;
}

export interface FkDropResult {
  runId: number;
  droppedConstraint?: string;
  revertedType: boolean;
}

export interface FkAbortResult {
  runId: number;
  /** What was removed, in order; empty when no partial run was there. */
  removed: string[];
}

/** Runs statements as one journaled step under the run lock, with the lock retry schedule. */
async function undoRun<T>(
  database: Database,
  command: string,
  options: UndoOptions & { runOptions: Record<string, unknown> },
  plan: (state: FkState) => { statements: string[]; result: (runId: number) => T },
): Promise<T> {
  return withRunLock(database, { what: `caseguard ${command}`, waitMs: options.lockWaitMs, signal: options.signal, log: options.log }, async (lock) => {
    await ensureJournalSchema(database.pool);
    const { statements, result } = plan(await readFkState(database.db));
    const runId = await startRun(database.db, { command, options: options.runOptions, dryRun: false, process: database.identity });
    try {
      if (statements.length > 0) {
        await lock.assertHeld();
        await withClient(database.pool, (client) => runTransaction(client, { id: command.replace(' ', '_'), statements }, options.timing, options.log));
      }
      await finishRun(database.db, runId, { status: 'completed', counts: { statements: statements.length } });
      return result(runId);
    } catch (error) {
      await finishRun(database.db, runId, { status: 'failed', counts: {}, error: describePgError(error) }).catch(() => undefined);
      throw error;
    }
  });
}

/** Rollback: drop the constraint; with revertType, the column back to text (a rewrite). */
export async function fkDrop(database: Database, options: UndoOptions & { revertType: boolean }): Promise<FkDropResult> {
  return undoRun(database, 'fk drop', { ...options, runOptions: { revertType: options.revertType } }, (state) => {
    const statements: string[] = [];
    if (state.foreignKey) {
      // cases first, as the application writes, so a writer holding cases cannot deadlock us
      statements.push('LOCK TABLE mega_agent.cases IN SHARE ROW EXCLUSIVE MODE');
      statements.push(`ALTER TABLE ${NAMES.table} DROP CONSTRAINT IF EXISTS ${quoted(state.foreignKey.name)}`);
    }
    const revert = options.revertType && state.columnType === 'uuid';
    if (revert) statements.push(`ALTER TABLE ${NAMES.table} ALTER COLUMN case_id TYPE text USING case_id::text`);
    return { statements, result: (runId) => ({ runId, droppedConstraint: state.foreignKey?.name, revertedType: revert }) };
  });
}

/** What a partial online run left before its swap, and the statement that removes each. */
export function abortStatements(state: FkState): Array<{ what: string; statement: string }> {
  if (state.columnType !== 'text') return [];
  const T = NAMES.table;
  return [
    // the trigger first: from then on writers are no longer checked against the shadow column
    ...(state.hasTrigger ? [{ what: `trigger ${NAMES.trigger}`, statement: `DROP TRIGGER IF EXISTS ${NAMES.trigger} ON ${T}` }] : []),
    ...(state.notNullCheck !== undefined ? [{ what: `check ${NAMES.notNullCheck}`, statement: `ALTER TABLE ${T} DROP CONSTRAINT IF EXISTS ${NAMES.notNullCheck}` }] : []),
    ...(state.uniqueIndex !== undefined ? [{ what: `index ${NAMES.uniqueIndex}`, statement: `DROP INDEX IF EXISTS mega_agent.${NAMES.uniqueIndex}` }] : []),
    ...(state.hasShadow ? [{ what: `column ${NAMES.shadow}`, statement: `ALTER TABLE ${T} DROP COLUMN IF EXISTS ${NAMES.shadow}` }] : []),
    ...(state.hasFunction ? [{ what: `function ${NAMES.fn}()`, statement: `DROP FUNCTION IF EXISTS ${NAMES.fn}()` }] : []),
  ];
}

/** Undoes a partial online run that has not swapped the columns yet. */
export async function fkAbort(database: Database, options: UndoOptions): Promise<FkAbortResult> {
  return undoRun(database, 'fk abort', { ...options, runOptions: {} }, (state) => {
    if (state.columnType === 'uuid') {
      throw new UsageError(
        'case_id is uuid already: the online run is past its swap, so there is nothing to abort; caseguard fk add finishes it, caseguard fk drop --revert-type rolls it back',
      );
    }
    const parts = abortStatements(state);
    return { statements: parts.map((p) => p.statement), result: (runId) => ({ runId, removed: parts.map((p) => p.what) }) };
  });
}
