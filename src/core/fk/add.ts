/**
 * fk add: the foreign keys to cases(case_id) from case_intake_progress.case_id (ON DELETE
 * CASCADE), case_memory.case_id (CASCADE) and bot_user_context.active_case_id (SET NULL), each
 * skipped when its optional table is absent. Added the way large production teams add one to a
 * live table: every step idempotent and skipped when done (a rerun resumes), every lock taken
 * in short attempts and retried (retry.ts), the constraint added NOT VALID and validated in a
 * separate transaction. planFkAdd reads the steps and everything that would refuse them (the
 * server, a shape the strategy cannot carry, blocking findings); applyFkAdd runs them in the
 * run protocol (journal/run.ts), one checkpoint before every step and every backfill page.
 */
import type pg from 'pg';
import type { Database } from '../db/database.js';
import type { DatabaseShape } from '../db/inspect.js';
import { runBlockers } from '../db/locks.js';
import { assertUnblocked, ExitCode, UsageError, type Blocker } from '../errors.js';
import { journalItem } from '../journal/journal.js';
import { runOptionsOf, withJournaledRun, type Run, type RunOptions } from '../journal/run.js';
import { blockingFindings, fkBlockers, fkPlan, fkRefusal, type Blockers, type FkPlan } from './fk.js';
import type { Reference, ReferenceId, Strategy } from './names.js';
import { inTransaction, runConcurrent, runTransaction, withLockRetries, type FkTiming } from './retry.js';
import { presentStates, readFkState } from './state.js';
import { backfillSql, firstKey, stepsFor } from './steps.js';

export interface FkAddSettings {
  strategy: Strategy;
  timing: FkTiming;
  /** Rows per backfill transaction (online). */
  batchSize: number;
  /** Only these references (default: every one whose table exists). */
  only?: ReferenceId[];
}

export interface FkAddPlan extends FkPlan {
  batchSize: number;
  /** The blocking findings' counts. */
  findings: Blockers;
  /** Why it cannot be applied: the server, the strategy, or findings (exit 1: run caseguard recover first). */
  blockers: Blocker[];
}

export interface FkAddOptions extends RunOptions {
  /** Test hook: runs after each step; throwing there is a failure midway. */
  afterStep?: (stepId: string) => void | Promise<void>;
  onStep?: (event: FkStepEvent) => void;
}

export interface FkStepEvent {
  step: string;
  status: 'skipped' | 'done';
  ms: number;
  attempts: number;
}

export interface FkAddResult {
  runId: number;
  references: ReferenceId[];
  steps: Array<Omit<FkStepEvent, 'step'> & { id: string }>;
  backfilled: number;
  durationMs: number;
}

const WHAT = 'caseguard fk add';

/** The steps fk add would run for the references asked for, without their blockers (what fk plan prints). */
export async function readFkPlan(database: Database, settings: FkAddSettings): Promise<FkPlan> {
  return fkPlan(await presentStates(database.db, settings.only), settings.strategy, settings.timing, settings.batchSize);
}

/** The plan with everything that would refuse it, read-only: the findings are counted only where an FK is still to be validated. */
export async function planFkAdd(database: Database, shape: DatabaseShape, settings: FkAddSettings): Promise<FkAddPlan> {
  const states = await presentStates(database.db, settings.only);
  const plan = fkPlan(states, settings.strategy, settings.timing, settings.batchSize);
  const blockers = await runBlockers(database, WHAT);
  if (plan.refusal) blockers.push({ reason: plan.refusal, exitCode: ExitCode.usage });
  const findings = await fkBlockers(database, shape, states);
  const blocking = blockingFindings(findings, plan.references);
  if (blocking.length > 0) {
    blockers.push({
      reason: `the foreign key(s) cannot be added while ${blocking.join(', ')} finding(s) exist; run caseguard recover (with --quarantine for invalid and duplicate rows) first`,
      exitCode: ExitCode.findings,
    });
  }
  return { ...plan, batchSize: settings.batchSize, findings, blockers };
}

export async function applyFkAdd(database: Database, plan: FkAddPlan, options: FkAddOptions): Promise<FkAddResult> {
  assertUnblocked(plan);
  const runOptions = { strategy: plan.strategy, references: plan.references, ...plan.timing, batchSize: plan.batchSize };
  return withJournaledRun(database, { ...runOptionsOf(options), command: 'fk add', options: runOptions, unit: 'step' }, async (run) => {
    const started = performance.now();
    const present = await run.guard(presentStates(database.db, plan.references));
    // The state may have moved since the plan was read: a shape the strategy cannot carry is refused whole.
    const refusal = present.map((s) => fkRefusal(s, plan.strategy)).find(Boolean);
    if (refusal) throw new UsageError(refusal);
    const steps: FkAddResult['steps'] = [];
    let backfilled = 0;
    const record = (event: FkStepEvent) => {
      steps.push({ id: event.step, status: event.status, ms: event.ms, attempts: event.attempts });
      Object.assign(run.counts, { steps: steps.filter((s) => s.status === 'done').length, backfilled });
      options.onStep?.(event);
    };
    for (const initial of present) {
      const reference = initial.reference;
      for (const id of stepsFor(plan.strategy, initial).map((s) => s.id)) {
        await run.checkpoint(`before step ${id}`);
        // Re-read the state before each step: an earlier step changes it (and so a step's SQL).
        const state = (await run.guard(readFkState(database.db, reference)))!;
        // A step with nothing left to do may drop out of the list (carry_indexes after the swap).
        const step = stepsFor(plan.strategy, state).find((s) => s.id === id);
        if (!step || step.done(state)) {
          record({ step: id, status: 'skipped', ms: 0, attempts: 0 });
          continue;
        }
        const t0 = performance.now();
        const attempts = await run.withSession(async (session) => {
          const client = session.$client;
          if (step.mode === 'batches') {
            const r = await backfill(client, reference, plan, run);
            backfilled += r.rows;
            return r.attempts;
          }
          return step.mode === 'concurrent'
            ? runConcurrent(client, step, plan.timing, run.log)
            : runTransaction(client, step, plan.timing, run.log);
        });
        const ms = Math.round(performance.now() - t0);
        await run.guard(
          journalItem(database.db, run.id, {
            action: 'fk_step',
            table: reference.table,
            rowKey: { step: id },
            after: { ms, attempts },
          }),
        );
        run.log.info({ event: 'fk.step_done', step: id, ms, attempts });
        record({ step: id, status: 'done', ms, attempts });
        await options.afterStep?.(id);
      }
    }
    return {
      status: 'completed',
      value: { runId: run.id, references: plan.references, steps, backfilled, durationMs: performance.now() - started },
    };
  });
}

/** Keyset pages over the table's key, each its own transaction, in the run's batch loop, until a page comes back empty. */
async function backfill(client: pg.ClientBase, ref: Reference, plan: FkAddPlan, run: Run): Promise<{ rows: number; attempts: number }> {
  const statement = backfillSql(ref);
  let after = firstKey(ref);
  let rows = 0;
  let attempts = 0;
  let batch = 0;
  await run.batches(async () => {
    batch++;
    const result = await withLockRetries(`${ref.id}.backfill`, plan.timing, run.log, (lockTimeoutMs) =>
      inTransaction(client, plan.timing, lockTimeoutMs, () => client.query<Record<string, string>>(statement, [...after, plan.batchSize])),
    );
    attempts += result.attempts;
    const last = result.value.rows[0];
    if (!last) return false;
    rows += Number(last.filled);
    after = ref.key.map((k) => last[k.name]!);
    run.log.debug({ event: 'fk.backfill_batch', reference: ref.id, batch, rows: Number(last.filled) });
    return true;
  });
  return { rows, attempts };
}
