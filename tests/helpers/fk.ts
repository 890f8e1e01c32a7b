import { inspectDatabase } from '../../src/core/db/inspect.js';
import { applyFkAdd, planFkAdd, type FkAddOptions, type FkAddResult, type FkAddSettings } from '../../src/core/fk/add.js';
import { silentLogger } from '../../src/core/logger.js';
import { applyFkAbort, applyFkDrop, planFkAbort, planFkDrop, type FkAbortResult, type FkDropResult } from '../../src/core/fk/undo.js';
import type { ReferenceId } from '../../src/core/fk/names.js';
import type pg from 'pg';
import type { TestDatabase } from './db.js';

export const TIMING = { lockTimeoutMs: 100, maxLockTimeoutMs: 2000, retryBudgetMs: 30_000, maxAttempts: 30, statementTimeout: '60s' };

/** fk add as the CLI runs it with --yes: the plan with its blockers, then its apply. */
export async function runFkAdd(t: TestDatabase, options: Partial<FkAddSettings & FkAddOptions> = {}): Promise<FkAddResult> {
  const { strategy, timing, batchSize, only, ...apply } = options;
  const plan = await planFkAdd(t.database, await inspectDatabase(t.database.db), {
    strategy: strategy ?? 'online',
    timing: timing ?? TIMING,
    batchSize: batchSize ?? 100,
    only,
  });
  return applyFkAdd(t.database, plan, { log: silentLogger, ...apply });
}

/** fk drop --yes [--revert-type]. */
export async function runFkDrop(t: TestDatabase, revertType: boolean, only?: ReferenceId[]): Promise<FkDropResult> {
  return applyFkDrop(t.database, await planFkDrop(t.database, { timing: TIMING, revertType, only }), { log: silentLogger });
}

/** fk abort --yes. */
export async function runFkAbort(t: TestDatabase, only?: ReferenceId[]): Promise<FkAbortResult> {
  return applyFkAbort(t.database, await planFkAbort(t.database, { timing: TIMING, only }), { log: silentLogger });
}

/** Everything about a table (default: progress) a change could touch: columns in order, indexes, constraints, triggers, grants, comments. */
export async function tableShape(pool: pg.Pool, table = 'mega_agent.case_intake_progress'): Promise<string> {
  const r = await pool.query(
    `
    SELECT json_build_object(
      'columns', (SELECT json_agg(json_build_object('name', attname, 'type', format_type(atttypid, atttypmod), 'notnull', attnotnull, 'acl', attacl::text,
                                                    'comment', col_description(attrelid, attnum)) ORDER BY attnum)
                    FROM pg_attribute WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped),
      'indexes', (SELECT json_agg(pg_get_indexdef(indexrelid) ORDER BY indexrelid::regclass::text) FROM pg_index WHERE indrelid = $1::regclass),
      'constraints', (SELECT json_agg(conname || ' ' || pg_get_constraintdef(oid) ORDER BY conname) FROM pg_constraint WHERE conrelid = $1::regclass),
      'triggers', (SELECT json_agg(tgname ORDER BY tgname) FROM pg_trigger WHERE tgrelid = $1::regclass AND NOT tgisinternal),
      'functions', (SELECT json_agg(proname ORDER BY proname) FROM pg_proc WHERE pronamespace = 'caseguard'::regnamespace)
    )::text AS shape`,
    [table],
  );
  return r.rows[0].shape;
}
