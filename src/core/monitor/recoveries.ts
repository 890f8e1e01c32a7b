/**
 * Recoveries: the cases the ensure-case guard re-created and the cases `caseguard recover`
 * created (both marked in the case's metadata, recovered_by), in all and by day (UTC) over the
 * last days, and the recover runs of the journal by status. Read-only.
 */
import { sql } from 'drizzle-orm';
import type { Executor } from '../db/database.js';
import { runsByStatus, type RunStatus } from '../journal/journal.js';

/** Where a re-created case came from: the intake's guard, or a recover run. */
export type RecoverySource = 'ensure_case' | 'recover';

/** metadata.recovered_by as each writer spells it. */
const RECOVERED_BY: Record<string, RecoverySource> = { ensure_case_exists: 'ensure_case', caseguard: 'recover' };

export interface RecoveryReport {
  cases: Record<RecoverySource, { total: number; byDay: Record<string, number> }>;
  /**
   * Recover runs (not dry runs) by status, dead runs as abandoned; undefined when the journal
   * is absent or this role may not read it.
   */
  recoverRuns?: Partial<Record<RunStatus, number>>;
}

export async function readRecoveries(db: Executor, options: { days: number; journal: boolean }): Promise<RecoveryReport> {
  // Index-backed where the application has a partial index on cases (created_at) WHERE metadata ? 'recovered_by'.
  const rows = await db.execute<{ recovered_by: string; day: string | null; n: string } & Record<string, unknown>>(sql`
    WITH bounds AS (SELECT ((now() AT TIME ZONE 'UTC')::date - ${options.days - 1}::int)::timestamp AT TIME ZONE 'UTC' AS since)
    SELECT c.metadata->>'recovered_by' AS recovered_by,
           CASE WHEN c.created_at >= (SELECT since FROM bounds) THEN to_char(c.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD') END AS day,
           count(*) AS n
      FROM mega_agent.cases c
     WHERE c.metadata ? 'recovered_by'
     GROUP BY 1, 2`);
  const cases: RecoveryReport['cases'] = { ensure_case: { total: 0, byDay: {} }, recover: { total: 0, byDay: {} } };
  for (const row of rows.rows) {
    const source = RECOVERED_BY[row.recovered_by];
    if (!source) continue;
    const n = Number(row.n);
    cases[source].total += n;
    if (row.day) cases[source].byDay[row.day] = (cases[source].byDay[row.day] ?? 0) + n;
  }
  const readable = options.journal && (await journalReadable(db));
  return { cases, recoverRuns: readable ? await runsByStatus(db, 'recover') : undefined };
}

/** A role with SELECT on the application's tables only may not see the journal: that is not a failure. */
async function journalReadable(db: Executor): Promise<boolean> {
  const result = await db.execute<{ ok: boolean } & Record<string, unknown>>(sql`
    SELECT has_schema_privilege('caseguard', 'USAGE') AND has_table_privilege('caseguard.runs', 'SELECT') AS ok`);
  return Boolean(result.rows[0]?.ok);
}
