/**
 * recover: repairs what scan finds, without losing anything.
 *
 * 1. planRecovery is the dry run: the same target query as a real run, read in one READ ONLY
 *    REPEATABLE READ transaction that writes nothing anywhere (a SELECT-only role and a hot
 *    standby can run it), with the blockers that would refuse a real run; what a terminal
 *    prompt shows before anything is locked or journaled.
 * 2. applyRecovery runs inside the run protocol (journal/run.ts: lock, journal, checkpoints,
 *    one finish policy) and snapshots its targets in one set-based pass (see targets.ts) with
 *    the same query, so it executes the plan shown, into a temporary table of its own session.
 * 3. The run works through the targets in keyset batches, one statement (and so one
 *    transaction) per batch, journaling what each batch actually changed (apply.ts).
 * 4. Stopped by a signal, it stops at the next checkpoint between batches and is journaled as
 *    interrupted; a rerun finishes the job. A rerun after success changes nothing.
 */
import { sql } from 'drizzle-orm';
import { PgDialect } from 'drizzle-orm/pg-core';
import type { Database, Session } from '../db/database.js';
import type { DatabaseShape } from '../db/inspect.js';
import { runBlockers } from '../db/locks.js';
import { assertUnblocked, ExitCode, UsageError, type Blocker } from '../errors.js';
import { runOptionsOf, withJournaledRun, type Run, type RunEnd, type RunOptions } from '../journal/run.js';
import { applyTargets, emptyProgress, type BatchEvent } from './apply.js';
import { batchStatement } from './batches.js';
import { constraintsRefusal, inspectCaseConstraints, type CaseConstraints } from './constraints.js';
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

/** What a recover run does: the settings a plan is read with and applied with. */
export interface RecoverSettings {
  /** Move invalid and duplicate rows into the quarantine (otherwise they are reported and left). */
  quarantine: boolean;
  batchSize: number;
  /** Samples per kind in the plan. */
  sampleLimit: number;
  /** Duplicate groups: keep the row the bot reads (default), or quarantine every row. */
  duplicates?: DuplicatePolicy;
  /** Values for the application's required columns of cases (--case-value), by column. */
  caseValues?: Record<string, string>;
}

/** How a plan is applied: the run's logger, its stop signal, and what it reports batch by batch. */
export interface ApplyOptions extends RunOptions {
  /** Called after each committed batch; awaited. */
  onBatch?: (event: BatchEvent) => void | Promise<void>;
}

export interface RecoveryPlan {
  /** The run executing it; null for a plan read without a run (planRecovery). */
  runId: number | null;
  /** Read without a run, in a READ ONLY transaction (what --dry-run shows). */
  dryRun: boolean;
  /** Whether counts and samples were read (a plan read only to be applied at once skips them: the run snapshots its own). */
  previewed: boolean;
  shape: DatabaseShape['shape'];
  settings: RecoverSettings;
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
  /** Why the plan cannot be applied here (the server, a privilege, the application's rules); empty when it can. */
  blockers: Blocker[];
  /** The statement each kind runs per batch, with its parameters. */
  statements: Array<{ kind: TargetKind; sql: string; params: unknown[] }>;
}

export type { BatchEvent } from './apply.js';

/** partial: the run finished, but the database rejected some targets (journaled as 'rejected'). */
export type RecoverStatus = 'completed' | 'partial' | 'nothing_to_do';

export interface RecoverResult {
  runId: number;
  status: RecoverStatus;
  /** The plan as the run snapshotted it. */
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
const WHAT = 'caseguard recover';

export function validateRecoverSettings(o: Pick<RecoverSettings, 'batchSize'>): void {
  if (!Number.isInteger(o.batchSize) || o.batchSize < 1 || o.batchSize > 100_000) {
    throw new UsageError('--batch-size must be a whole number from 1 to 100000');
  }
}

/**
 * The plan, read-only: one READ ONLY REPEATABLE READ transaction, nothing written anywhere, no
 * lock taken (a SELECT-only role and a hot standby can read it: its blockers then say why it
 * cannot be applied there). The statements shown carry run id 0 where the real run's id goes.
 * With preview false only what decides whether it can run is read (a run applied at once
 * snapshots its own targets).
 */
export async function planRecovery(
  database: Database,
  shape: DatabaseShape,
  settings: RecoverSettings,
  options: { preview?: boolean } = {},
): Promise<RecoveryPlan> {
  validateRecoverSettings(settings);
  const preview = options.preview ?? true;
  const blockers = await runBlockers(database, WHAT);
  const temporary = await temporaryRefusal(database);
  if (temporary) blockers.push({ reason: temporary, exitCode: ExitCode.connection });
  // Outside the snapshot: a --case-value that does not fit is found by a cast that fails.
  const constraints = await inspectCaseConstraints(database.db, settings.caseValues ?? {});
  return database.db.transaction(
    async (tx) => {
      const refusal = constraintsRefusal(constraints);
      if (refusal) blockers.push({ reason: refusal, exitCode: ExitCode.usage });
      const found = preview
        ? await previewTargets(tx, shape, settings.sampleLimit, settings.duplicates ?? 'keep-latest')
        : { counts: noTargets(), samples: [], ambiguous: { count: 0, samples: [] } };
      return planFrom(shape, null, found.counts, settings, found.samples, found.ambiguous, constraints, blockers, preview);
    },
    { isolationLevel: 'repeatable read', accessMode: 'read only' },
  );
}

/**
 * Applies a plan: takes the run lock, snapshots the targets again with the plan's settings (the
 * live bot may have fixed some meanwhile: each batch re-checks its targets), works through them
 * in batches and journals what each did.
 */
export async function applyRecovery(
  database: Database,
  shape: DatabaseShape,
  plan: RecoveryPlan,
  options: ApplyOptions,
): Promise<RecoverResult> {
  assertUnblocked(plan);
  const settings = plan.settings;
  const duplicates = settings.duplicates ?? 'keep-latest';
  const runOptions = {
    quarantine: settings.quarantine,
    batchSize: settings.batchSize,
    duplicates,
    caseValues: Object.keys(settings.caseValues ?? {}),
  };
  return withJournaledRun(
    database,
    {
      ...runOptionsOf(options),
      command: 'recover',
      options: runOptions,
      asyncCommit: true,
    },
    (run) =>
      run.withSession(async (session) => {
        try {
          return await work(session, shape, plan, options, run);
        } finally {
          // Gone with the session anyway; dropped now so the connection goes back to the pool clean.
          await dropTargets(session).catch(() => undefined);
          await session.execute(sql`RESET synchronous_commit`).catch(() => undefined);
        }
      }),
  );
}

/** Why a real run cannot keep its targets (a temporary table), or undefined when it can. */
async function temporaryRefusal(database: Database): Promise<string | undefined> {
  const result = await database.db.execute<{ ok: boolean; db: string }>(
    sql`SELECT has_database_privilege(current_database(), 'TEMPORARY') AS ok, current_database() AS db`,
  );
  const row = result.rows[0]!;
  if (row.ok) return undefined;
  return `the database user lacks a privilege this command needs: TEMPORARY on database ${row.db} (a recover run keeps its targets in a temporary table); grant it, or run as a role that has it; nothing was changed`;
}

const noTargets = () => Object.fromEntries(TARGET_KINDS.map((k) => [k, 0])) as Record<TargetKind, number>;

async function work(
  session: Session,
  shape: DatabaseShape,
  planned: RecoveryPlan,
  options: ApplyOptions,
  run: Run,
): Promise<RunEnd<RecoverResult>> {
  const started = performance.now();
  const progress = emptyProgress();
  const settings = planned.settings;
  const { counts, shared } = await snapshotTargets(session, shape, settings.duplicates ?? 'keep-latest');
  const plan = await snapshotPlan(session, shape, run.id, counts, shared, planned);
  const record = () =>
    Object.assign(run.counts, progress.applied, { targets: plan.total, batches: progress.batches, rejected: progress.rejected });
  const result = (status: RecoverStatus): RecoverResult => ({
    runId: run.id,
    status,
    plan,
    applied: progress.applied,
    skipped: progress.taken - progress.rejected - Object.values(progress.applied).reduce((a, b) => a + b, 0),
    rejected: progress.rejected,
    batches: progress.batches,
    longestBatchMs: progress.longestBatchMs,
    durationMs: performance.now() - started,
  });
  record();
  if (plan.total === 0) return { status: 'completed', value: result('nothing_to_do') };
  // A batch's commit does not wait for its WAL to reach disk: the run's final journal entry
  // is a synchronous commit (on the pool), which makes every batch before it durable. A server
  // crash before that loses at most the last batches together with their journal items (one
  // transaction each), and the run is then abandoned with the counts that survived.
  await session.execute(sql`SET synchronous_commit = off`);
  await applyTargets(
    {
      db: session,
      run,
      counts: plan.counts,
      total: plan.total,
      quarantine: settings.quarantine,
      batchSize: settings.batchSize,
      settings: { shapeIsUuid: shape.shape === 'uuid', caseValues: settings.caseValues ?? {} },
      onBatch: async (event) => {
        record();
        await options.onBatch?.(event);
      },
    },
    progress,
  );
  record();
  if (progress.rejected > 0) {
    return {
      status: 'partial',
      reason: `${progress.rejected} target(s) rejected by the database; see caseguard runs show ${run.id}`,
      value: result('partial'),
    };
  }
  return { status: 'completed', value: result('completed') };
}

/** The plan as the run's snapshot has it: its counts and samples, and the rules on cases the plan read. */
async function snapshotPlan(
  session: Session,
  shape: DatabaseShape,
  runId: number,
  counts: Record<TargetKind, number>,
  shared: number,
  planned: RecoveryPlan,
): Promise<RecoveryPlan> {
  const samples = await sampleTargets(session, planned.settings.sampleLimit);
  const ambiguous = await ambiguousOwners(session, shared, planned.settings.sampleLimit);
  return planFrom(shape, runId, counts, planned.settings, samples, ambiguous, planned.constraints, [], true);
}

function planFrom(
  shape: DatabaseShape,
  runId: number | null,
  counts: Record<TargetKind, number>,
  options: RecoverSettings,
  samples: TargetSample[],
  ambiguous: { count: number; samples: TargetSample[] },
  constraints: CaseConstraints,
  blockers: Blocker[],
  previewed: boolean,
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
  const settings: RecoverSettings = {
    quarantine: options.quarantine,
    batchSize: options.batchSize,
    sampleLimit: options.sampleLimit,
    duplicates,
    caseValues: options.caseValues ?? {},
  };
  return {
    runId,
    dryRun: runId === null,
    previewed,
    shape: shape.shape,
    settings,
    counts,
    total,
    samples,
    ambiguous,
    leftAlone,
    batchSize: options.batchSize,
    duplicates,
    constraints,
    blockers,
    statements,
  };
}
