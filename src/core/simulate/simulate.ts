/**
 * simulate: many virtual users through the intake flow, concurrently, on the same handlers the
 * bot runs. It can replay the old buggy start for a share of users and inject crashes between
 * start's two writes, and then counts what each path left behind.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { sql } from 'drizzle-orm';
import type { Db } from '../db/database.js';
import type { DatabaseShape } from '../db/inspect.js';
import { SqlState, expectedServerError, isConnectionLost, safeMessage, sqlStateOf } from '../db/sqlstate.js';
import { ConnectionError, ExitCode, InterruptedError, UsageError } from '../errors.js';
import { createIntakeHandlers } from '../intake/handlers.js';
import { legacyBuggyStart } from '../intake/legacy.js';
import type { Logger } from '../logger.js';
import { userRandom } from './random.js';
import { planUser, runUser, type UserOutcome } from './virtualUser.js';

export interface SimulateOptions {
  users: number;
  concurrency: number;
  seed: number;
  /** Share of users whose start takes the old buggy path (progress without case). */
  legacyRate: number;
  /** Share of starts that crash between the two writes. */
  crashRate: number;
  /** Keep starting users until this much time has passed (users is then an upper bound). */
  durationMs?: number;
  signal?: AbortSignal;
  /** Named prepared statements (see IntakeOptions.preparedStatements; default true). */
  preparedStatements?: boolean;
  onUserDone?: (done: number, total: number) => void;
}

export interface LatencyStats {
  count: number;
  p50Ms: number;
  p95Ms: number;
  p99Ms: number;
  maxMs: number;
}

export interface SimulateReport {
  /** Prefix of every virtual user id of this run ("sim-<tag>-<n>"). */
  userPrefix: string;
  seed: number;
  users: number;
  concurrency: number;
  outcomes: Record<UserOutcome, number>;
  /** Rows this run's users have in the database afterwards. */
  cases: number;
  progressRows: number;
  memoryRows: number;
  orphans: { total: number; legacy: number; crash: number; unexplained: number };
  /** Legacy starts the foreign key refused (uuid shape): the fix at the database level. */
  legacyRefusedByForeignKey: number;
  crashes: { fixedPath: number; legacyPath: number };
  recoveries: number;
  reprompts: number;
  errors: number;
  /** Of the errors, those a DBA must fix first: a missing privilege, a refused or lost connection. */
  connectionErrors: number;
  firstErrors: string[];
  durationMs: number;
  completedPerSecond: number;
  latency: Record<string, LatencyStats>;
}

class SimulatedCrash extends Error {}

export function validateSimulateOptions(o: SimulateOptions): void {
  const problems: string[] = [];
  if (!Number.isInteger(o.users) || o.users < 1 || o.users > 10_000_000) problems.push('--users must be a whole number from 1 to 10000000');
  if (!Number.isInteger(o.concurrency) || o.concurrency < 1 || o.concurrency > 256)
    problems.push('--concurrency must be a whole number from 1 to 256');
  if (!Number.isInteger(o.seed)) problems.push('--seed must be a whole number');
  if (o.durationMs !== undefined && !(o.durationMs > 0 && o.durationMs <= 24 * 3600_000))
    problems.push('--duration must be between 1ms and 24h');
  for (const [name, value] of [
    ['--legacy-rate', o.legacyRate],
    ['--crash-rate', o.crashRate],
  ] as const) {
    if (!(value >= 0 && value <= 1)) problems.push(`${name} must be between 0 and 1`);
  }
  if (problems.length > 0) throw new UsageError(problems.join('; '));
}

export async function simulate(db: Db, shape: DatabaseShape, log: Logger, options: SimulateOptions): Promise<SimulateReport> {
  validateSimulateOptions(options);
  const prefix = `sim-${randomBytes(4).toString('hex')}-`;
  const latencies = new Map<string, number[]>();
  const timed = {
    async call<T>(handler: string, fn: () => Promise<T>): Promise<T> {
      const started = performance.now();
      try {
        return await fn();
      } finally {
        const list = latencies.get(handler) ?? [];
        list.push(performance.now() - started);
        latencies.set(handler, list);
      }
    },
  };
  const crashNext = new Set<string>();
  const handlers = createIntakeHandlers({
    db,
    shape,
    log,
    preparedStatements: options.preparedStatements,
    afterCaseInsert: (userId) => {
      if (crashNext.delete(userId)) throw new SimulatedCrash('simulated crash between the case and progress writes');
    },
  });
  const outcomes: Record<UserOutcome, number> = { completed: 0, cancelled: 0, abandoned: 0, legacy_orphan: 0, crashed: 0, failed: 0 };
  const legacyCases = new Map<string, 'legacy' | 'crash'>();
  const crashes = { fixedPath: 0, legacyPath: 0 };
  let legacyRefused = 0;
  let recoveries = 0;
  let reprompts = 0;
  let errors = 0;
  let connectionErrors = 0;
  const firstErrors: string[] = [];
  let next = 0;
  let done = 0;
  let lost: unknown;
  const started = performance.now();

  const one = async (n: number) => {
    const userId = `${prefix}${n}`;
    const random = userRandom(options.seed, n);
    const plan = planUser(random, options.legacyRate, options.crashRate);
    if (plan.crash && !plan.legacy) crashNext.add(userId);
    const legacyStart = async () => {
      const caseId = randomUUID();
      legacyCases.set(caseId, plan.crash ? 'crash' : 'legacy');
      try {
        await legacyBuggyStart(db, log, userId, {
          caseId,
          createCase: false,
          betweenWrites: () => {
            if (plan.crash) throw new SimulatedCrash('simulated crash after the progress write');
          },
        });
      } catch (error) {
        if (!(error instanceof SimulatedCrash)) throw error;
        crashes.legacyPath++;
      }
    };
    try {
      const result = await runUser(handlers, userId, n, plan, random, timed, legacyStart);
      outcomes[result.outcome]++;
      recoveries += result.recoveries;
      reprompts += result.reprompts;
    } catch (error) {
      if (error instanceof SimulatedCrash) {
        crashes.fixedPath++;
        outcomes.crashed++;
      } else if (plan.legacy && sqlStateOf(error) === SqlState.foreignKeyViolation) {
        legacyRefused++;
        outcomes.failed++;
      } else {
        errors++;
        outcomes.failed++;
        if (expectedServerError(error)?.exitCode === ExitCode.connection) connectionErrors++;
        // the server went away (or was demoted in a failover): no user started now could get anywhere
        if (isConnectionLost(error) || sqlStateOf(error) === SqlState.readOnlySqlTransaction) lost ??= error;
        if (firstErrors.length < 5) firstErrors.push(safeMessage(error));
        log.error({ event: 'simulate.user_failed', user_id: userId, err: safeMessage(error) });
      }
    } finally {
      crashNext.delete(userId);
      done++;
      options.onUserDone?.(done, options.users);
    }
  };

  const deadline = options.durationMs === undefined ? Infinity : performance.now() + options.durationMs;
  const worker = async () => {
    while (next < options.users && !options.signal?.aborted && !lost && performance.now() < deadline) await one(next++);
  };
  await Promise.all(Array.from({ length: Math.min(options.concurrency, options.users) }, worker));
  const durationMs = performance.now() - started;
  if (lost) {
    throw new ConnectionError(
      `the server was lost after ${done} user(s) (${safeMessage(lost)}); each of the intake's writes is one transaction, so what committed is whole: caseguard scan checks`,
      { cause: lost },
    );
  }
  const counts = await countRows(db, shape, prefix);
  let legacyOrphans = 0;
  let crashOrphans = 0;
  for (const caseId of counts.orphanCaseIds) {
    const cause = legacyCases.get(caseId);
    if (cause === 'legacy') legacyOrphans++;
    else if (cause === 'crash') crashOrphans++;
  }
  const report: SimulateReport = {
    userPrefix: prefix,
    seed: options.seed,
    users: done,
    concurrency: options.concurrency,
    outcomes,
    cases: counts.cases,
    progressRows: counts.progress,
    memoryRows: counts.memory,
    orphans: {
      total: counts.orphanCaseIds.length,
      legacy: legacyOrphans,
      crash: crashOrphans,
      unexplained: counts.orphanCaseIds.length - legacyOrphans - crashOrphans,
    },
    legacyRefusedByForeignKey: legacyRefused,
    crashes,
    recoveries,
    reprompts,
    errors,
    connectionErrors,
    firstErrors,
    durationMs,
    completedPerSecond: outcomes.completed / (durationMs / 1000),
    latency: Object.fromEntries([...latencies].map(([k, v]) => [k, stats(v)])),
  };
  if (options.signal?.aborted)
    throw Object.assign(new InterruptedError(`simulate interrupted after ${done} user(s); the report covers them`), { report });
  return report;
}

async function countRows(db: Db, shape: DatabaseShape, prefix: string) {
  const like = `${prefix.replace(/[\\%_]/g, '\\$&')}%`;
  const result = await db.execute<{ cases: string; progress: string; memory: string }>(sql`
    SELECT (SELECT count(*) FROM mega_agent.cases WHERE user_id LIKE ${like}) AS cases,
           (SELECT count(*) FROM mega_agent.case_intake_progress WHERE user_id LIKE ${like}) AS progress,
           ${shape.hasMemory ? sql`(SELECT count(*) FROM mega_agent.case_memory WHERE user_id LIKE ${like})` : sql`0`} AS memory`);
  const orphans = await db.execute<{ case_id: string }>(sql`
    SELECT p.case_id::text AS case_id FROM mega_agent.case_intake_progress p
     WHERE p.user_id LIKE ${like}
       AND NOT EXISTS (SELECT 1 FROM mega_agent.cases c WHERE c.case_id::text = p.case_id::text)`);
  const row = result.rows[0]!;
  return {
    cases: Number(row.cases),
    progress: Number(row.progress),
    memory: Number(row.memory),
    orphanCaseIds: orphans.rows.map((r) => r.case_id),
  };
}

function stats(values: number[]): LatencyStats {
  const sorted = [...values].sort((a, b) => a - b);
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0;
  const round = (n: number) => Math.round(n * 100) / 100;
  return { count: sorted.length, p50Ms: round(at(0.5)), p95Ms: round(at(0.95)), p99Ms: round(at(0.99)), maxMs: round(sorted.at(-1) ?? 0) };
}
