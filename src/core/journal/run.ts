/**
 * The run protocol: every mutating operation (recover, undo, quarantine restore, fk add, fk
 * abort, fk drop) applies its plan inside withJournaledRun, which owns, in this order:
 *
 * 1. the run lock (db/locks.ts), and caseguard's journal schema;
 * 2. the run's row in caseguard.runs (journal.ts: startRun settles dead runs first);
 * 3. the batch loop: between two batches or steps, the one checkpoint a run has — the lock
 *    session is still there; the throttle waits while the cluster's health signals are over
 *    their limits (throttle.ts); then a stop request (SIGINT/SIGTERM) ends the run there;
 * 4. one finish policy, however the work ends:
 *      returned           completed, or partial with the reason the work gives
 *      InterruptedError   interrupted
 *      UsageError, BlockedError (a refusal decided inside the run)   refused
 *      a lost connection  failed, and a ConnectionError that says only what is durable
 *      anything else      failed, with the server's error (never row values)
 *    The finish is written on the pool with a synchronous commit, so every batch before it is
 *    durable once it is; when it cannot be written (the server is gone), the next run finalises
 *    the run as abandoned with the counts its committed journal items hold.
 *
 * Run items are written by the statement that makes the change (INSERT_ITEMS, journal.ts), so
 * a batch and its journal commit or roll back together: data and journal never disagree.
 */
import { sql } from 'drizzle-orm';
import type { Database, Session } from '../db/database.js';
import type pg from 'pg';
import { destroyConnection, withinDeadline, withRunLock, withSession, type RunLock } from '../db/locks.js';
import { ensureJournalSchema } from '../db/migrate.js';
import { SqlState, describePgError, isConnectionLost, safeMessage, sqlStateOf } from '../db/sqlstate.js';
import { BlockedError, ConnectionError, InterruptedError, UsageError } from '../errors.js';
import type { Logger } from '../logger.js';
import { finishRun, startRun, type RunStatus } from './journal.js';
import { Throttle, type ThrottleSettings } from './throttle.js';

/** How a plan is applied, whatever the command: what every apply function takes. */
export interface RunOptions {
  log: Logger;
  /** Fired by SIGINT/SIGTERM: the run stops at its next checkpoint. */
  signal?: AbortSignal;
  /** How long to wait for the run lock. */
  lockWaitMs?: number;
  /**
   * How long a stop request lets the batch or step in hand finish before its statement is
   * cancelled (default 30 s, --shutdown-grace); an undo is cancelled at once.
   */
  graceMs?: number;
  /** Fired by a second SIGINT/SIGTERM: what is in flight is cancelled at once, grace or not. */
  hardSignal?: AbortSignal;
  /** Pause between batches while the cluster's health signals are over their limits (throttle.ts). */
  throttle?: ThrottleSettings;
  /** Told when the run pauses ("paused: replica lag 14.2s > 10s") and when it resumes (undefined). */
  onPause?: (status: string | undefined) => void;
  /**
   * How long the run's connections may answer nothing before the run counts them lost (default
   * 60 s, --network-timeout): its lock session is pinged with a deadline all along, so a network
   * that stops answering without closing the socket ends the run (exit 3), never hangs it.
   */
  networkTimeoutMs?: number;
}

export interface RunSpec extends RunOptions {
  /** The journal's name of the command: 'recover', 'recover --undo', 'fk add', … */
  command: string;
  /** Journaled with the run (never values a row holds). */
  options: Record<string, unknown>;
  /**
   * The run's batch commits do not wait for their WAL flush (recover): after a lost connection
   * the last of them may be lost with their journal items, and messages say so.
   */
  asyncCommit?: boolean;
  /** What the run counts as committed for its messages: batches (the loop counts them) or steps (markCommitted). */
  unit?: 'batch' | 'step';
}

/** The default of --shutdown-grace. */
export const DEFAULT_GRACE_MS = 30_000;
/** The default of --network-timeout. */
export const DEFAULT_NETWORK_TIMEOUT_MS = 60_000;
/** After the grace period's cancel, how long before the statement's socket is cut (a cancel a silent network never delivers). */
const CUT_AFTER_CANCEL_MS = 3_000;
/** The longest a run's final journal write may take: it is a single row. */
const FINISH_DEADLINE_MS = 10_000;

/** What the work ends with: its status and the value the caller gets. */
export interface RunEnd<T> {
  status: 'completed' | 'partial';
  /** Why a run ended partial (journaled as its error). */
  reason?: string;
  value: T;
}

export interface Run {
  readonly id: number;
  readonly command: string;
  /** The spec's logger with the run id. */
  readonly log: Logger;
  readonly signal?: AbortSignal;
  readonly lock: RunLock;
  /** What the run has done so far; journaled with its end, also when it fails midway. */
  readonly counts: Record<string, number>;
  /** Batches committed so far (the loop counts them). */
  readonly committed: number;
  /** The check between two batches or steps: the lock session is alive; a stop request ends the run here. */
  checkpoint(where?: string): Promise<void>;
  /** The batch loop: checkpoint, then batch(), until batch() says nothing is left (false). */
  batches(batch: () => Promise<boolean>): Promise<void>;
  /** One step of a run counted in steps has committed. */
  markCommitted(): void;
  /** p, unless the run's connections are lost first (then their error): for the run's waits outside withSession. */
  guard<T>(p: Promise<T>): Promise<T>;
  /**
   * fn on a connection of the run's own (its temporary tables, its transaction), whose statement
   * in hand a stop request cancels: after the grace period, or at once (an undo, all or nothing).
   */
  withSession<T>(fn: (session: Session) => Promise<T>, options?: { cancel?: 'after-grace' | 'at-once' }): Promise<T>;
}

/** The statuses a run's work can end it with; 'abandoned' is set by the next run, 'running' by the start. */
type FinishStatus = Exclude<RunStatus, 'running' | 'abandoned'>;

/**
 * Runs work under the run lock as one journaled run. The caller has checked the plan's
 * blockers (plans carry them; see errors.ts, Blocker): nothing here refuses but the lock.
 */
export async function withJournaledRun<T>(database: Database, spec: RunSpec, work: (run: Run) => Promise<RunEnd<T>>): Promise<T> {
  const what = `caseguard ${spec.command}`;
  return withRunLock(database, { what, waitMs: spec.lockWaitMs, signal: spec.signal, log: spec.log }, async (lock) => {
    await ensureJournalSchema(database.pool);
    const throttle = spec.throttle ? new Throttle(database.db, spec.throttle, spec.log, spec.onPause) : undefined;
    if (spec.throttle?.requireHealth && !(await throttle!.check())) {
      throw new ConnectionError(
        `--require-health: the database user cannot read the cluster's health signals (pg_stat_replication, pg_replication_slots): grant it pg_monitor, or run without --require-health; nothing was changed`,
      );
    }
    const runId = await startRun(database.db, { command: spec.command, options: spec.options, dryRun: false, process: database.identity });
    const run = new JournaledRun(database, runId, spec, lock, throttle);
    const finish = async (status: FinishStatus, error?: string, fromItems = false) => {
      if (throttle && throttle.pausedMs > 0) run.counts.paused_ms = Math.round(throttle.pausedMs);
      // bounded: on a network that went silent the journal write would wait forever; the next run settles this one
      const written = finishRun(database.db, runId, { status, counts: run.counts, error, countsFromItems: fromItems });
      await withinDeadline(written, Math.min(run.networkTimeoutMs / 2, FINISH_DEADLINE_MS)).catch((e: unknown) =>
        run.log.error({ event: 'run.journal_failed', status, err: safeMessage(e) }, `run ${runId} could not be journaled as ${status}`),
      );
    };
    const stopWatching = run.watchStop();
    const stopPinging = run.watchNetwork();
    try {
      const end = await work(run);
      await finish(end.status, end.reason);
      return end.value;
    } catch (error) {
      if (error instanceof InterruptedError || (spec.signal?.aborted && (run.cut || !isConnectionLost(error)))) {
        const interrupted =
          error instanceof InterruptedError ? error : new InterruptedError(`${spec.command} run ${runId} interrupted`, { cause: error });
        await finish('interrupted', interrupted.message);
        throw interrupted;
      }
      if (error instanceof UsageError || error instanceof BlockedError) {
        await finish('refused', error.message);
        throw error;
      }
      // A server that stopped taking writes mid-run was demoted (a failover): its connections are as good as lost.
      const demoted = sqlStateOf(error) === SqlState.readOnlySqlTransaction;
      if (error instanceof ConnectionError || isConnectionLost(error) || demoted) {
        const reason =
          run.lost?.message ??
          (error instanceof ConnectionError
            ? error.message
            : demoted
              ? `the server stopped taking writes mid-run (${safeMessage(error)}: demoted in a failover?)`
              : `the connection to the database was lost (${safeMessage(error)})`);
        // What the client counted may include a batch the server lost: the journal's items are the truth.
        await finish('failed', reason, true);
        throw new ConnectionError(`${reason}; ${spec.command} run ${runId} stopped before its next write; ${run.durable()}`, {
          cause: error,
        });
      }
      await finish('failed', describePgError(error));
      throw error;
    } finally {
      stopWatching();
      stopPinging();
    }
  });
}

class JournaledRun implements Run {
  readonly counts: Record<string, number> = {};
  readonly log: Logger;
  committed = 0;
  /** The backends doing the run's work (by pid), their connections, and whether a stop cancels them at once. */
  private readonly working = new Map<number, { when: 'after-grace' | 'at-once'; client: pg.PoolClient }>();
  private graceOver = false;
  /** Why the run's connections count as lost (the lock session went silent), once they do. */
  lost?: ConnectionError;
  /** The run's statements in flight were cut by a stop that could not be delivered otherwise. */
  cut = false;
  private rejectLost!: (error: Error) => void;
  /** Settles (rejects) only when the connections are lost: every wait of the protocol races it. */
  private readonly lostPromise = new Promise<never>((_, reject) => (this.rejectLost = reject));

  constructor(
    private readonly database: Database,
    readonly id: number,
    private readonly spec: RunSpec,
    readonly lock: RunLock,
    private readonly throttle?: Throttle,
  ) {
    this.log = spec.log.child({ run_id: id });
    this.lostPromise.catch(() => undefined);
  }

  get networkTimeoutMs(): number {
    return this.spec.networkTimeoutMs ?? DEFAULT_NETWORK_TIMEOUT_MS;
  }

  guard<T>(p: Promise<T>): Promise<T> {
    return Promise.race([p, this.lostPromise]);
  }

  /**
   * Pings the lock session all along, each ping bounded by a deadline: a silent network ends the
   * run within the network timeout, mid-statement too (the working connections are cut).
   */
  watchNetwork(): () => void {
    const every = this.networkTimeoutMs / 3;
    let pinging = false;
    const timer = setInterval(() => {
      if (pinging || this.lost) return;
      pinging = true;
      this.lock
        .assertHeld(this.networkTimeoutMs / 2)
        .catch((error: unknown) => this.loseConnections(error instanceof ConnectionError ? error : new ConnectionError(safeMessage(error))))
        .finally(() => (pinging = false));
    }, every);
    timer.unref();
    return () => clearInterval(timer);
  }

  private loseConnections(error: ConnectionError): void {
    if (this.lost) return;
    this.lost = error;
    this.log.warn({ event: 'run.connection_lost', err: error.message }, error.message);
    for (const { client } of this.working.values()) destroyConnection(client);
    this.rejectLost(error);
  }

  get command(): string {
    return this.spec.command;
  }

  get signal(): AbortSignal | undefined {
    return this.spec.signal;
  }

  async checkpoint(where?: string): Promise<void> {
    await this.guard(this.lock.assertHeld(this.networkTimeoutMs / 2));
    if (this.throttle) await this.guard(this.throttle.wait(this.spec.signal));
    if (this.spec.signal?.aborted) {
      const at = where ?? `after ${this.committed} ${(this.spec.unit ?? 'batch') === 'batch' ? 'batch(es)' : 'step(s)'}`;
      throw new InterruptedError(`${this.spec.command} interrupted ${at}; run ${this.id} is journaled as interrupted; rerun to finish`);
    }
  }

  async batches(batch: () => Promise<boolean>): Promise<void> {
    for (;;) {
      await this.checkpoint();
      if (!(await batch())) return;
      if ((this.spec.unit ?? 'batch') === 'batch') this.committed++;
    }
  }

  markCommitted(): void {
    this.committed++;
  }

  async withSession<T>(fn: (session: Session) => Promise<T>, options: { cancel?: 'after-grace' | 'at-once' } = {}): Promise<T> {
    return withSession(this.database.pool, async (session) => {
      const pid = Number((await this.guard(session.execute<{ pid: number }>(sql`SELECT pg_backend_pid() AS pid`))).rows[0]!.pid);
      const cancel = options.cancel ?? 'after-grace';
      this.working.set(pid, { when: cancel, client: session.$client });
      if (this.spec.signal?.aborted && (cancel === 'at-once' || this.graceOver)) this.cancel([pid]);
      try {
        return await this.guard(fn(session));
      } finally {
        this.working.delete(pid);
      }
    });
  }

  /**
   * On a stop request: cancels at once what must stop at once, and what is still working once
   * the grace period is over. Returns the function that stops watching.
   */
  watchStop(): () => void {
    const signal = this.spec.signal;
    if (!signal) return () => undefined;
    let timer: NodeJS.Timeout | undefined;
    let cut: NodeJS.Timeout | undefined;
    const cancelAll = (why: string) => {
      if (this.graceOver) return;
      this.graceOver = true;
      if (this.working.size > 0)
        this.log.warn({ event: 'run.cancelled', grace_ms: this.graceMs, why }, `${why}: cancelling what is in flight`);
      this.cancel([...this.working.keys()]);
      // a cancel a silent network never delivers: the statement's socket is cut a moment later
      cut = setTimeout(() => {
        this.cut = true;
        this.log.warn({ event: 'run.cancelled', why: 'not ended after the cancel' }, "cutting the run's connections");
        for (const { client } of this.working.values()) destroyConnection(client);
        this.lock.cut();
        this.rejectLost(
          new InterruptedError(`${this.spec.command} run ${this.id} stopped: what was in flight was cut after the grace period`),
        );
      }, CUT_AFTER_CANCEL_MS);
      cut.unref();
    };
    const onStop = () => {
      this.cancel([...this.working].filter(([, w]) => w.when === 'at-once').map(([pid]) => pid));
      timer = setTimeout(() => cancelAll(`the grace period of ${this.graceMs / 1000}s is over`), this.graceMs);
      timer.unref();
    };
    const onHardStop = () => cancelAll('a second stop request');
    if (signal.aborted) onStop();
    else signal.addEventListener('abort', onStop, { once: true });
    this.spec.hardSignal?.addEventListener('abort', onHardStop, { once: true });
    return () => {
      signal.removeEventListener('abort', onStop);
      this.spec.hardSignal?.removeEventListener('abort', onHardStop);
      if (timer) clearTimeout(timer);
      if (cut) clearTimeout(cut);
    };
  }

  private get graceMs(): number {
    return this.spec.graceMs ?? DEFAULT_GRACE_MS;
  }

  /** pg_cancel_backend from another connection: the statement in hand fails (57014) and its transaction rolls back. */
  private cancel(pids: number[]): void {
    for (const pid of pids) {
      void withinDeadline(this.database.pool.query('SELECT pg_cancel_backend($1)', [pid]), CUT_AFTER_CANCEL_MS).catch((e: unknown) =>
        this.log.warn({ event: 'run.cancel_failed', pid, err: safeMessage(e) }),
      );
    }
  }

  /** What is durable of the run's work, said truthfully for a run that lost its connection. */
  durable(): string {
    const unit = (this.spec.unit ?? 'batch') === 'batch' ? 'batch(es)' : 'step(s)';
    const rerun = `rerun caseguard ${this.spec.command} to finish`;
    if (this.committed === 0) return `nothing of it had committed; ${rerun}`;
    if (this.spec.asyncCommit) {
      return (
        `up to ${this.committed} ${unit} had committed, and the last of them may be lost with their journal items ` +
        `(batch commits do not wait for their WAL flush): the journal on the server says which are kept; ${rerun}`
      );
    }
    return `${this.committed} ${unit} had committed; they are kept and journaled; ${rerun}`;
  }
}

/** The run options of an apply's options (which may carry more, such as an onBatch callback). */
export function runOptionsOf(options: RunOptions): RunOptions {
  return {
    log: options.log,
    signal: options.signal,
    lockWaitMs: options.lockWaitMs,
    graceMs: options.graceMs,
    hardSignal: options.hardSignal,
    throttle: options.throttle,
    onPause: options.onPause,
    networkTimeoutMs: options.networkTimeoutMs,
  };
}
