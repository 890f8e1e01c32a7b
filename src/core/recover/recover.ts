/**
 * recover: repairs what scan finds, without losing anything.
 *
 * 1. planRecovery is the dry run: the same target query as a real run, read in one READ ONLY
 *    REPEATABLE READ transaction that writes nothing anywhere (a SELECT-only role and a hot
 *    standby can run it); what a terminal prompt shows before anything is locked or journaled.
 * 2. A real run takes the run lock (see db/locks.ts), is journaled, and snapshots its targets in
 *    one set-based pass (see targets.ts) with the same query, so it executes the plan shown,
 *    into a temporary table of one session that the run then works on.
 * 3. The real run works through the targets in keyset batches, one statement (and so one
 *    transaction) per batch, journaling what each batch actually changed.
 * 4. Interrupted between batches (signal), it stops after the current batch and records the run
 *    as interrupted; a rerun finishes the job. A rerun after success changes nothing.
 */
import { sql } from 'drizzle-orm';
import { PgDialect } from 'drizzle-orm/pg-core';
import type { Database, Session } from '../db/database.js';
import type { DatabaseShape } from '../db/inspect.js';
import { withRunLock, withSession, type RunLock } from '../db/locks.js';
import { ensureJournalSchema } from '../db/migrate.js';
import { describePgError, isConnectionLost, safeMessage } from '../db/sqlstate.js';
import { ConnectionError, InterruptedError, UsageError } from '../errors.js';
import { finishRun, startRun } from '../journal/journal.js';
import type { Logger } from '../logger.js';
import { applyTargets, emptyProgress, type BatchEvent } from './apply.js';
import { batchStatement } from './batches.js';
import { inspectCaseConstraints, type CaseConstraints } from './constraints.js';
import {
  ambiguousOwners,
  dropTargets,
  isQuarantineKind,
  previewTargets,
  sampleTargets,
  snapshotTargets,
  TARGET_KINDS,
  type DuplicatePolicy,
  type TargetKind,
  type TargetSample,
} from './targets.js';

export interface RecoverOptions {
  dryRun: boolean;
  /** Move invalid and duplicate rows into the quarantine (otherwise they are reported and left). */
  quarantine: boolean;
  batchSize: number;
  /** Samples per kind in the plan. */
  sampleLimit: number;
  log: Logger;
  signal?: AbortSignal;
  /** Asked once the plan is known, before anything is written; false declines. */
  confirm?: (plan: RecoveryPlan) => Promise<boolean>;
  /** How long to wait for the run lock. */
  lockWaitMs?: number;
  /** Duplicate groups: keep the row the bot reads (default), or quarantine every row. */
  duplicates?: DuplicatePolicy;
  /** Values for the application's required columns of cases (--case-value), by column. */
  caseValues?: Record<string, string>;
  /** Called after each committed batch; awaited. */
  onBatch?: (event: BatchEvent) => void | Promise<void>;
}

export interface RecoveryPlan {
  /** The run executing it; null for a plan read without a run (the dry run). */
  runId: number | null;
  dryRun: boolean;
  shape: DatabaseShape['shape'];
  /** Targets found, per kind (quarantine kinds whether or not --quarantine was given). */
  counts: Record<TargetKind, number>;
  /** Targets this run will act on. */
  total: number;
  samples: TargetSample[];
  /** Missing uuids referenced by several users: the owner chosen is the earliest progress row's. */
  ambiguous: { count: number; samples: TargetSample[] };
  /** What stays as it is: without --quarantine, invalid and duplicate rows are only reported. */
  leftAlone: string[];
  batchSize: number;
  duplicates: DuplicatePolicy;
  /** The application's rules on cases: blockers stop the run before it starts; risks may reject rows. */
  constraints: CaseConstraints;
  /** The statement each kind runs per batch, with its parameters. */
  statements: Array<{ kind: TargetKind; sql: string; params: unknown[] }>;
}

export type { BatchEvent } from './apply.js';

/** partial: the run finished, but the database rejected some targets (journaled as 'rejected'). */
export type RecoverStatus = 'completed' | 'partial' | 'nothing_to_do' | 'dry_run' | 'declined';

export interface RecoverResult {
  /** null for a dry run, which journals nothing. */
  runId: number | null;
  status: RecoverStatus;
  plan: RecoveryPlan;
  applied: Record<TargetKind, number>;
  /** Targets already handled by someone else meanwhile (e.g. a case the live bot re-created). */
  skipped: number;
  /** Targets the database rejected or a trigger suppressed; journaled with the reason. */
  rejected: number;
  batches: number;
  longestBatchMs: number;
  durationMs: number;
}

const dialect = new PgDialect();

export function validateRecoverOptions(o: Pick<RecoverOptions, 'batchSize'>): void {
  if (!Number.isInteger(o.batchSize) || o.batchSize < 1 || o.batchSize > 100_000) {
    throw new UsageError('--batch-size must be a whole number from 1 to 100000');
  }
}

/**
 * The plan without a run: one READ ONLY REPEATABLE READ transaction; nothing is written
 * anywhere, no lock is taken. The statements shown carry run id 0 where the real run's id goes.
 */
export async function planRecovery(
  database: Database,
  shape: DatabaseShape,
  options: Pick<RecoverOptions, 'quarantine' | 'batchSize' | 'sampleLimit' | 'duplicates' | 'caseValues'>,
): Promise<RecoveryPlan> {
  validateRecoverOptions(options);
  return database.db.transaction(
    async (tx) => {
      const preview = await previewTargets(tx, shape, options.sampleLimit, options.duplicates ?? 'keep-latest');
      const constraints = await inspectCaseConstraints(tx, options.caseValues ?? {});
      return planFrom(shape, null, preview.counts, { ...options, dryRun: true }, preview.samples, preview.ambiguous, constraints);
    },
    { isolationLevel: 'repeatable read', accessMode: 'read only' },
  );
}

/**
 * Applies a plan read by planRecovery (after the user confirmed it): takes the run lock,
 * snapshots the targets again with the plan's settings (the live bot may have fixed some
 * meanwhile: each batch re-checks its targets) and journals what it did.
 */
export async function applyRecovery(
  database: Database,
  shape: DatabaseShape,
  plan: RecoveryPlan,
  options: Omit<RecoverOptions, 'dryRun' | 'batchSize' | 'duplicates' | 'confirm'>,
): Promise<RecoverResult> {
  return recover(database, shape, { ...options, dryRun: false, batchSize: plan.batchSize, duplicates: plan.duplicates });
}

export async function recover(database: Database, shape: DatabaseShape, options: RecoverOptions): Promise<RecoverResult> {
  validateRecoverOptions(options);
  if (options.dryRun) {
    const started = performance.now();
    const plan = await planRecovery(database, shape, options);
    return {
      runId: null,
      status: 'dry_run',
      plan,
      applied: emptyProgress().applied,
      skipped: 0,
      rejected: 0,
      batches: 0,
      longestBatchMs: 0,
      durationMs: performance.now() - started,
    };
  }
  // The application's rules that would stop the run are reported before any lock or journal row.
  const { blockers } = await inspectCaseConstraints(database.db, options.caseValues ?? {});
  if (blockers.length > 0) throw new UsageError(`recover cannot run as asked; nothing was changed: ${blockers.join('; ')}`);
  await assertCanCreateTemporaryTable(database);
  // held at once: the run lock's session, the run's own session, and one for the journal
  if ((database.pool.options.max ?? 10) < 3)
    throw new UsageError('recover needs a pool of at least 3 connections (poolSize); nothing was changed');
  return withRunLock(
    database,
    { what: 'caseguard recover', waitMs: options.lockWaitMs, signal: options.signal, log: options.log },
    async (lock) => {
      await ensureJournalSchema(database.pool);
      return withSession(database.pool, (session) => run(database, session, shape, options, lock));
    },
  );
}

/** A run keeps its targets in a temporary table: without the privilege it refuses before anything is written. */
async function assertCanCreateTemporaryTable(database: Database): Promise<void> {
  const result = await database.db.execute<{ ok: boolean; db: string }>(
    sql`SELECT has_database_privilege(current_database(), 'TEMPORARY') AS ok, current_database() AS db`,
  );
  const row = result.rows[0]!;
  if (!row.ok) {
    throw new ConnectionError(
      `the database user lacks a privilege this command needs: TEMPORARY on database ${row.db} (a recover run keeps its targets in a temporary table); grant it, or run as a role that has it; nothing was changed`,
    );
  }
}

async function run(
  database: Database,
  session: Session,
  shape: DatabaseShape,
  options: RecoverOptions,
  lock: RunLock,
): Promise<RecoverResult> {
  const { db } = database;
  const started = performance.now();
  const duplicates = options.duplicates ?? 'keep-latest';
  const runId = await startRun(db, {
    command: 'recover',
    options: {
      quarantine: options.quarantine,
      batchSize: options.batchSize,
      duplicates,
      caseValues: Object.keys(options.caseValues ?? {}),
    },
    dryRun: false,
    process: database.identity,
  });
  const log = options.log.child({ run_id: runId });
  const progress = emptyProgress();
  const finish = async (status: 'completed' | 'partial' | 'interrupted' | 'failed' | 'refused', error?: string) => {
    const counts = { ...progress.applied, targets: plan?.total ?? 0, batches: progress.batches, rejected: progress.rejected };
    await finishRun(db, runId, { status, counts, error }).catch((e: unknown) =>
      log.error({ event: 'recover.journal_failed', err: safeMessage(e) }),
    );
    // Gone with the session anyway; dropped now so the connection goes back to the pool clean.
    await dropTargets(session).catch(() => undefined);
    await session.execute(sql`RESET synchronous_commit`).catch(() => undefined);
  };
  let plan: RecoveryPlan | undefined;
  try {
    const { counts, shared } = await snapshotTargets(session, shape, duplicates);
    plan = await buildPlan(database, session, shape, runId, counts, shared, options);
    const result = (status: RecoverStatus): RecoverResult => ({
      runId,
      status,
      plan: plan!,
      applied: progress.applied,
      skipped: progress.taken - progress.rejected - Object.values(progress.applied).reduce((a, b) => a + b, 0),
      rejected: progress.rejected,
      batches: progress.batches,
      longestBatchMs: progress.longestBatchMs,
      durationMs: performance.now() - started,
    });
    if (plan.total === 0) {
      await finish('completed');
      return result('nothing_to_do');
    }
    if (options.confirm && !(await options.confirm(plan))) {
      await finish('refused', 'declined at the confirmation prompt');
      return result('declined');
    }
    // A batch's commit does not wait for its WAL to reach disk: the run's final journal entry
    // is a synchronous commit (on the pool), which makes every batch before it durable. A server
    // crash before that loses at most the last batches together with their journal items (one
    // transaction each), and the run is then abandoned with the counts that survived.
    await session.execute(sql`SET synchronous_commit = off`);
    await applyTargets(
      {
        db: session,
        runId,
        counts: plan.counts,
        total: plan.total,
        quarantine: options.quarantine,
        batchSize: options.batchSize,
        settings: { shapeIsUuid: shape.shape === 'uuid', caseValues: options.caseValues ?? {} },
        lock,
        log,
        signal: options.signal,
        onBatch: options.onBatch,
      },
      progress,
    );
    const status = progress.rejected > 0 ? 'partial' : 'completed';
    await finish(
      status,
      progress.rejected > 0 ? `${progress.rejected} target(s) rejected by the database; see caseguard runs show ${runId}` : undefined,
    );
    return result(status);
  } catch (error) {
    if (error instanceof InterruptedError) {
      await finish('interrupted', error.message);
      throw error;
    }
    await finish('failed', describePgError(error));
    if (error instanceof ConnectionError) throw error;
    if (isConnectionLost(error)) {
      throw new ConnectionError(
        `the connection was lost during recover run ${runId} after ${progress.batches} committed batch(es); they are kept; rerun caseguard recover to finish`,
        { cause: error },
      );
    }
    throw error;
  }
}

async function buildPlan(
  database: Database,
  session: Session,
  shape: DatabaseShape,
  runId: number,
  counts: Record<TargetKind, number>,
  shared: number,
  options: RecoverOptions,
): Promise<RecoveryPlan> {
  const samples = await sampleTargets(session, options.sampleLimit);
  const ambiguous = await ambiguousOwners(session, shared, options.sampleLimit);
  const constraints = await inspectCaseConstraints(database.db, options.caseValues ?? {});
  return planFrom(shape, runId, counts, options, samples, ambiguous, constraints);
}

function planFrom(
  shape: DatabaseShape,
  runId: number | null,
  counts: Record<TargetKind, number>,
  options: Pick<RecoverOptions, 'dryRun' | 'quarantine' | 'batchSize' | 'duplicates' | 'caseValues'>,
  samples: TargetSample[],
  ambiguous: { count: number; samples: TargetSample[] },
  constraints: CaseConstraints,
): RecoveryPlan {
  const acted = TARGET_KINDS.filter((k) => counts[k] > 0 && (options.quarantine || !isQuarantineKind(k)));
  const total = acted.reduce((n, k) => n + counts[k], 0);
  const leftAlone = ['owner_mismatch findings are reported by scan and never changed by recover'];
  const left = TARGET_KINDS.filter((k) => isQuarantineKind(k) && counts[k] > 0 && !options.quarantine);
  if (left.length > 0) {
    leftAlone.unshift(
      `${left
        .filter((k) => k !== 'keep_duplicate')
        .map((k) => `${counts[k]} ${k.replace('quarantine_', '')} row(s)`)
        .join(
          ', ',
        )} with no usable case id (invalid_case_id, duplicate_progress) are left as they are; pass --quarantine to move them aside`,
    );
  }
  const statements = acted.map((kind) => {
    const settings = { shapeIsUuid: shape.shape === 'uuid', caseValues: options.caseValues ?? {} };
    const q = dialect.sqlToQuery(batchStatement(kind, runId ?? 0, 0, options.batchSize, settings));
    return { kind, sql: q.sql.replace(/\n\s*\n/g, '\n').trim(), params: q.params };
  });
  const duplicates = options.duplicates ?? 'keep-latest';
  return {
    runId,
    dryRun: options.dryRun,
    shape: shape.shape,
    counts,
    total,
    samples,
    ambiguous,
    leftAlone,
    batchSize: options.batchSize,
    duplicates,
    constraints,
    statements,
  };
}
