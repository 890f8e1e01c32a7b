/**
 * scan: runs the checks in one READ ONLY, REPEATABLE READ transaction (every check sees the same
 * snapshot) and returns a report; never writes. Works for a role with only USAGE and SELECT.
 */
import { sql, type SQL } from 'drizzle-orm';
import type { Db, Tx } from '../db/database.js';
import type { DatabaseShape } from '../db/inspect.js';
import { SqlState, sqlStateOf } from '../db/sqlstate.js';
import { CHECKS, MISSING_CASE_CHECKS, type CheckId, type Severity } from './checks.js';
import { readDeletionTracking } from './deletions.js';
import { allFindings, summarise, type ScanFilters, type Sources } from './queries.js';

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
  /** proven: a validated foreign key or the uuid type makes a finding impossible; nothing was read for it. */
  status: 'pass' | 'fail' | 'skipped' | 'proven';
  count: number;
  /** What proves it: the constraint's name, or the uuid type of the columns. */
  provenBy?: string;
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
  /**
   * complete: every finding there is was looked for. changed-rows-only: --since read the rows
   * changed in the window but could not see a case deleted in it (no deletion tracking over the
   * whole window), so an orphan made that way may be missed: the gate fails unless acceptPartial.
   */
  coverage: Coverage;
  /** Since when deletions of cases are recorded, where they are. */
  deletionsTrackedSince?: string;
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
export type Coverage = 'complete' | 'changed-rows-only';

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
  /** A changed-rows-only scan (see ScanReport.coverage) may pass the gate. */
  acceptPartial?: boolean;
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
        const plan = await planScan(tx, shape, options);
        const report = await checksIn(tx, shape, options, plan, started, t0);
        streamed = options.onAllFindings !== undefined;
        if (options.onAllFindings) await options.onAllFindings(report, cursor(tx, plan.findings));
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
/** What a scan reads, and how much of the damage that can see: worked out in the scan's snapshot. */
interface ScanPlan {
  findings: SQL;
  coverage: Coverage;
  trackedSince?: Date;
  proofs: Map<CheckId, string>;
}

/** The checks a validated foreign key or the uuid type proves, and what proves each. */
export function proofsOf(shape: DatabaseShape): Map<CheckId, string> {
  const proofs = new Map<CheckId, string>();
  if (shape.proofs.progress) proofs.set('orphaned_progress', shape.proofs.progress);
  if (shape.shape === 'uuid') {
    const type = 'the uuid type of case_intake_progress.case_id';
    proofs.set('invalid_case_id', type);
    proofs.set('duplicate_progress', type);
    if ((!shape.hasMemory || shape.memoryUuid) && (!shape.hasUserContext || shape.pointerUuid))
      proofs.set('noncanonical_case_id', 'the uuid type of every case id column');
  }
  if (shape.hasMemory && shape.proofs.memory) proofs.set('orphaned_memory', shape.proofs.memory);
  if (shape.hasUserContext && shape.proofs.pointer) proofs.set('dangling_active_case', shape.proofs.pointer);
  return proofs;
}

/** The checks a deleted case can make fail: the orphan checks. */
const DELETION_SENSITIVE: readonly CheckId[] = MISSING_CASE_CHECKS;

/** The tables a scan reads: a table whose foreign key is validated has nothing to find and is not read. */
export function sourcesOf(shape: DatabaseShape): Sources {
  return {
    shape: shape.shape,
    serverVersionNum: shape.serverVersionNum,
    memory: shape.hasMemory && !shape.proofs.memory,
    memoryUuid: shape.memoryUuid,
    pointers: shape.hasUserContext && !shape.proofs.pointer,
    pointerUuid: shape.pointerUuid,
  };
}

async function planScan(tx: Tx, shape: DatabaseShape, options: ScanFilters): Promise<ScanPlan> {
  const proofs = proofsOf(shape);
  const tracking = options.since !== undefined ? await readDeletionTracking(tx) : {};
  const tracked = tracking.since !== undefined && options.since !== undefined && tracking.since <= options.since;
  const present = (id: CheckId) =>
    id === 'orphaned_memory' ? shape.hasMemory : id === 'dangling_active_case' ? shape.hasUserContext : true;
  // the checks a deletion in the window could make fail and that nothing proves
  const blind = DELETION_SENSITIVE.filter((id) => present(id) && !proofs.has(id));
  const coverage: Coverage = options.since === undefined || tracked || blind.length === 0 ? 'complete' : 'changed-rows-only';
  const findings = allFindings(sourcesOf(shape), { userId: options.userId, since: options.since, deletionsTracked: tracked });
  return { findings, coverage, trackedSince: tracking.since, proofs };
}

export async function checksIn(
  tx: Tx,
  shape: DatabaseShape,
  options: Omit<ScanOptions, 'onAllFindings' | 'statementTimeout'>,
  plan?: ScanPlan,
  started = new Date(),
  t0 = performance.now(),
): Promise<ScanReport> {
  const { findings, coverage, trackedSince, proofs } = plan ?? (await planScan(tx, shape, options));
  const rows = await tx.execute<{ check_id: string; count: string; distinct_cases: string; samples: Finding[] }>(
    summarise(findings, options.limit),
  );
  const byCheck = new Map(rows.rows.map((r) => [r.check_id, r]));
  const missingCases = Number(byCheck.get('')?.count ?? 0);
  const checks = checkResults(shape, proofs, (id) => {
    const row = byCheck.get(id);
    return row && { count: Number(row.count), distinctCases: Number(row.distinct_cases), samples: row.samples };
  });
  return {
    database: options.databaseName,
    schema: 'mega_agent',
    startedAt: started.toISOString(),
    durationMs: Math.round(performance.now() - t0),
    shape: shape.shape,
    filters: { userId: options.userId, since: options.since?.toISOString() },
    coverage,
    ...(trackedSince ? { deletionsTrackedSince: trackedSince.toISOString() } : {}),
    checks,
    summary: gateSummary(checks, missingCases, options.gate, coverage === 'complete' || Boolean(options.acceptPartial)),
  };
}

/** What one check found: its count, distinct uuids without a case, and samples. */
export interface CheckCount {
  count: number;
  distinctCases: number;
  samples: Omit<Finding, 'check'>[];
}

/** Every check's result from its counts (undefined: nothing found), the shape and the proofs. */
export function checkResults(
  shape: DatabaseShape,
  proofs: Map<CheckId, string>,
  found: (id: CheckId) => CheckCount | undefined,
): CheckResult[] {
  return CHECKS.map((check) => {
    const base = { id: check.id, severity: check.severity, title: check.title };
    const present =
      check.needs === 'case_intake_progress' ||
      (check.needs === 'case_memory' && shape.hasMemory) ||
      (check.needs === 'bot_user_context' && shape.hasUserContext);
    if (!present) return { ...base, status: 'skipped', count: 0, samples: [], reason: `table absent (mega_agent.${check.needs})` };
    const proof = proofs.get(check.id);
    if (proof)
      return { ...base, status: 'proven', count: 0, ...(check.countsCases ? { distinctCases: 0 } : {}), samples: [], provenBy: proof };
    const row = found(check.id);
    const count = row?.count ?? 0;
    return {
      ...base,
      status: count > 0 ? 'fail' : 'pass',
      count,
      ...(check.countsCases ? { distinctCases: row?.distinctCases ?? 0 } : {}),
      samples: (row?.samples ?? []).map((s) => ({ ...s, check: check.id })),
    };
  });
}

/** The report's totals and the gate's verdict. */
export function gateSummary(checks: CheckResult[], missingCases: number, gate: Gate, looked: boolean): ScanReport['summary'] {
  const errors = checks.filter((c) => c.severity === 'error').reduce((n, c) => n + c.count, 0);
  const warnings = checks.filter((c) => c.severity === 'warn').reduce((n, c) => n + c.count, 0);
  const counted = gate.failOn === 'warn' ? errors + warnings : errors;
  // a gate never says clean where it did not look
  return { errors, warnings, missingCases, gate: counted > gate.maxFindings || !looked ? 'failed' : 'passed' };
}

/** Every finding, ordered by check, user and case id, fetched in pages from a server cursor. */
async function* cursor(tx: Tx, findingsSql: SQL): AsyncIterable<Finding[]> {
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
