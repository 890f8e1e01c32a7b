/**
 * scan: runs the checks in one READ ONLY, REPEATABLE READ transaction (every check sees the same
 * snapshot) and returns a report; never writes. Works for a role with only USAGE and SELECT.
 */
import { sql } from 'drizzle-orm';
import type { Db, Tx } from '../db/database.js';
import type { DatabaseShape } from '../db/inspect.js';
import { SqlState, sqlStateOf } from '../db/sqlstate.js';
import { CHECKS, type CheckId, type Severity } from './checks.js';
import { allFindings, summarise, type ScanFilters } from './queries.js';

/** One row a check reports. */
export interface Finding {
  check: CheckId;
  table: 'case_intake_progress' | 'case_memory' | 'bot_user_context';
  user_id: string;
  /** The case id as stored, in whatever spelling. */
  case_id: string;
  /** The canonical uuid it names, when it is a uuid. */
  canonical_id: string | null;
  /** The user the named case belongs to, where there is such a case. */
  owner: string | null;
  memory_id: number | null;
  detail: string;
}

export interface CheckResult {
  id: CheckId;
  severity: Severity;
  title: string;
  status: 'pass' | 'fail' | 'skipped';
  count: number;
  /** Distinct uuids without a case (orphan checks only). */
  distinctCases?: number;
  samples: Finding[];
  /** Why the check did not run. */
  reason?: string;
}

export interface ScanReport {
  database: string;
  schema: 'mega_agent';
  startedAt: string;
  durationMs: number;
  shape: DatabaseShape['shape'];
  filters: { userId?: string; since?: string };
  checks: CheckResult[];
  summary: {
    /** Findings of error-severity checks. */
    errors: number;
    /** Findings of warn-severity checks. */
    warnings: number;
    /** Distinct uuids referenced from progress, memory or pointers that have no case. */
    missingCases: number;
    /** The gate's verdict: failed when the findings it counts pass the threshold. */
    gate: GateVerdict;
  };
}

export type GateVerdict = 'passed' | 'failed';

export interface Gate {
  /** Lowest severity that fails the gate. */
  failOn: Severity;
  /** Findings (at or above failOn) tolerated before failing. */
  maxFindings: number;
}

export interface ScanOptions extends ScanFilters {
  databaseName: string;
  /** Samples per check. */
  limit: number;
  gate: Gate;
  /** statement_timeout for the scan's queries, e.g. '30s' (PostgreSQL syntax); '0' for none. */
  statementTimeout?: string;
  /**
   * Called with the report and every finding, streamed from a cursor in the same snapshot
   * (memory stays bounded however many there are): what --all prints.
   */
  onAllFindings?: (report: ScanReport, findings: AsyncIterable<Finding[]>) => Promise<void>;
}

const FETCH_SIZE = 2000;
/** FETCH takes no parameter: the statement is a constant of the source. */
const FETCH_PAGE = `FETCH ${FETCH_SIZE} FROM caseguard_findings`;

export async function scan(db: Db, shape: DatabaseShape, options: ScanOptions): Promise<ScanReport> {
  const started = new Date();
  const t0 = performance.now();
  const filters: ScanFilters = { userId: options.userId, since: options.since };
  const findingsSql = allFindings(
    { shape: shape.shape, serverVersionNum: shape.serverVersionNum, memory: shape.hasMemory, pointers: shape.hasUserContext },
    filters,
  );

  let streamed = false;
  const attempt = () =>
    db.transaction(
      async (tx) => {
        // Transaction-local settings only: nothing lingers on a pooled server connection. On 14+
        // the server notices a client that went away (a CLI killed mid-scan) within 2 s.
        const settings = [
          ...(options.statementTimeout !== undefined ? [sql`set_config('statement_timeout', ${options.statementTimeout}, true)`] : []),
          ...(shape.serverVersionNum >= 140000 ? [sql`set_config('client_connection_check_interval', '2s', true)`] : []),
        ];
        if (settings.length > 0) await tx.execute(sql`SELECT ${sql.join(settings, sql`, `)}`);
        const report = await checksIn(tx, shape, options, findingsSql, started, t0);
        streamed = options.onAllFindings !== undefined;
        if (options.onAllFindings) await options.onAllFindings(report, cursor(tx, findingsSql));
        return report;
      },
      { isolationLevel: 'repeatable read', accessMode: 'read only' },
    );
  try {
    return await attempt();
  } catch (error) {
    // A hot standby cancels a query whose snapshot replay must overwrite (40001, "conflict with
    // recovery"); a second try usually gets through. Not once findings have been streamed out.
    if (streamed || sqlStateOf(error) !== SqlState.serializationFailure) throw error;
    return attempt();
  }
}

/**
 * The checks' summary (counts and samples) read inside the caller's transaction: what scan
 * reports, and what the exporter reads in its own snapshot beside the funnel.
 */
export async function checksIn(
  tx: Tx,
  shape: DatabaseShape,
  options: Omit<ScanOptions, 'onAllFindings' | 'statementTimeout'>,
  findingsSql = allFindings(
    { shape: shape.shape, serverVersionNum: shape.serverVersionNum, memory: shape.hasMemory, pointers: shape.hasUserContext },
    { userId: options.userId, since: options.since },
  ),
  started = new Date(),
  t0 = performance.now(),
): Promise<ScanReport> {
  const rows = await tx.execute<{ check_id: string; count: string; distinct_cases: string; samples: Finding[] }>(
    summarise(findingsSql, options.limit),
  );
  const byCheck = new Map(rows.rows.map((r) => [r.check_id, r]));
  const missingCases = Number(byCheck.get('')?.count ?? 0);
  const checks: CheckResult[] = CHECKS.map((check) => {
    const present =
      check.needs === 'case_intake_progress' ||
      (check.needs === 'case_memory' && shape.hasMemory) ||
      (check.needs === 'bot_user_context' && shape.hasUserContext);
    if (!present) {
      return {
        id: check.id,
        severity: check.severity,
        title: check.title,
        status: 'skipped',
        count: 0,
        samples: [],
        reason: `table absent (mega_agent.${check.needs})`,
      };
    }
    const row = byCheck.get(check.id);
    const count = Number(row?.count ?? 0);
    return {
      id: check.id,
      severity: check.severity,
      title: check.title,
      status: count > 0 ? 'fail' : 'pass',
      count,
      ...(check.countsCases ? { distinctCases: Number(row?.distinct_cases ?? 0) } : {}),
      samples: (row?.samples ?? []).map((s) => ({ ...s, check: check.id })),
    };
  });
  return {
    database: options.databaseName,
    schema: 'mega_agent',
    startedAt: started.toISOString(),
    durationMs: Math.round(performance.now() - t0),
    shape: shape.shape,
    filters: { userId: options.userId, since: options.since?.toISOString() },
    checks,
    summary: gateSummary(checks, missingCases, options.gate),
  };
}

/** The report's totals and the gate's verdict. */
function gateSummary(checks: CheckResult[], missingCases: number, gate: Gate): ScanReport['summary'] {
  const errors = checks.filter((c) => c.severity === 'error').reduce((n, c) => n + c.count, 0);
  const warnings = checks.filter((c) => c.severity === 'warn').reduce((n, c) => n + c.count, 0);
  const counted = gate.failOn === 'warn' ? errors + warnings : errors;
  return { errors, warnings, missingCases, gate: counted > gate.maxFindings ? 'failed' : 'passed' };
}

/** Every finding, ordered by check, user and case id, fetched in pages from a server cursor. */
async function* cursor(tx: Tx, findingsSql: ReturnType<typeof allFindings>): AsyncIterable<Finding[]> {
  await tx.execute(sql`DECLARE caseguard_findings NO SCROLL CURSOR FOR
    SELECT check_id AS check, source_table AS table, user_id, case_id, canonical_id, owner, memory_id, detail
      FROM (${findingsSql}) f
     ORDER BY array_position(ARRAY[${sql.join(
       CHECKS.map((c) => sql`${c.id}`),
       sql`, `,
     )}]::text[], check_id), user_id, case_id, memory_id`);
  try {
    for (;;) {
      const page = await tx.execute<Finding & Record<string, unknown>>(sql.raw(FETCH_PAGE));
      if (page.rows.length === 0) return;
      yield page.rows.map((r) => ({ ...r, memory_id: r.memory_id === null ? null : Number(r.memory_id) }));
    }
  } finally {
    await tx.execute(sql`CLOSE caseguard_findings`);
  }
}
