/**
 * The throttle a run's checkpoint applies before every batch: it reads the cluster's health
 * signals (db/health.ts) and waits, between batches, while one is over its limit, the way the
 * tools DBAs trust do (gh-ost's --max-lag-millis, pt-online-schema-change's --max-lag, GitLab's
 * batched migrations). A continuous pause longer than the budget stops the run (exit 5), with
 * nothing half-done: a pause only ever falls between two committed batches.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { Executor } from '../db/database.js';
import { canReadHealth, readHealth, type Health } from '../db/health.js';
import { BusyError } from '../errors.js';
import type { Logger } from '../logger.js';

export interface ThrottleSettings {
  /** Pause while a streaming standby's replay lag is over this, in ms; 0: not on replica lag. */
  maxReplicaLagMs: number;
  /** Pause while a replication slot retains more WAL than this, in bytes; 0: not on slots. */
  maxSlotLagBytes: number;
  /** A pause between any two batches, in ms. */
  batchPauseMs: number;
  /** The longest continuous pause, in ms; then the run stops (exit 5). */
  budgetMs: number;
  /** Refuse to run where the signals cannot be read (no pg_monitor), rather than run unthrottled. */
  requireHealth: boolean;
}

export const DEFAULT_THROTTLE: ThrottleSettings = {
  maxReplicaLagMs: 10_000,
  maxSlotLagBytes: 2 ** 30,
  batchPauseMs: 0,
  budgetMs: 30 * 60_000,
  requireHealth: false,
};

/** How often the signals are read again while paused. */
const POLL_MS = 500;

/** A signal over its limit. */
interface Over {
  signal: 'replica_lag' | 'slot_lag';
  /** The standby or slot. */
  source: string;
  value: number;
  limit: number;
  /** "replica lag 14.2s > 10s" */
  text: string;
}

const seconds = (ms: number) => `${(ms / 1000).toFixed(1).replace(/\.0$/, '')}s`;
const bytes = (n: number) => (n >= 2 ** 30 ? `${(n / 2 ** 30).toFixed(1)}GB` : `${Math.round(n / 2 ** 20)}MB`);

export class Throttle {
  /** Time spent paused, over the whole run. */
  pausedMs = 0;
  /** What the health reads cost, over the whole run. */
  healthMs = 0;
  healthReads = 0;
  private readable: boolean | undefined;
  /** Per standby, the replay position last seen while it had a gap, and since when it has not moved. */
  private readonly stalls = new Map<string, { lsn: string | null; since: number }>();

  constructor(
    private readonly db: Executor,
    private readonly settings: ThrottleSettings,
    private readonly log: Logger,
    private readonly onPause?: (status: string | undefined) => void,
  ) {}

  private get watching(): boolean {
    return this.settings.maxReplicaLagMs > 0 || this.settings.maxSlotLagBytes > 0;
  }

  /** Whether the signals can be read; said once when they cannot. */
  async check(): Promise<boolean> {
    if (this.readable === undefined) {
      this.readable = this.watching ? await canReadHealth(this.db) : false;
      if (this.watching && !this.readable) {
        this.log.warn(
          { event: 'throttle.no_health' },
          "the database user cannot read the cluster's health (pg_monitor): the run goes on without pausing for replica or slot lag; grant pg_monitor, or pass --require-health to refuse",
        );
      }
    }
    return this.readable;
  }

  /** Before a batch: the fixed pause, then waits while a signal is over its limit. Returns early on a stop request. */
  async wait(signal?: AbortSignal): Promise<void> {
    if (this.settings.batchPauseMs > 0) await sleep(this.settings.batchPauseMs, undefined, { signal }).catch(() => undefined);
    if (!(await this.check())) return;
    let over = this.over(await this.read());
    if (!over) return;
    const started = performance.now();
    this.log.warn(
      { event: 'throttle.paused', signal: over.signal, source: over.source, value: over.value, limit: over.limit },
      `paused: ${over.text}`,
    );
    this.onPause?.(`paused: ${over.text}`);
    try {
      while (over && !signal?.aborted) {
        const pausedFor = performance.now() - started;
        if (pausedFor > this.settings.budgetMs) {
          throw new BusyError(
            `paused for ${seconds(pausedFor)} without a break (--throttle-budget ${seconds(this.settings.budgetMs)}): ${over.text}; nothing is half-done: every batch before the pause is committed; rerun once the cluster has caught up`,
          );
        }
        await sleep(POLL_MS, undefined, { signal }).catch(() => undefined);
        if (signal?.aborted) break;
        const next = this.over(await this.read());
        if (next && next.text !== over.text) this.onPause?.(`paused: ${next.text}`);
        over = next;
      }
    } finally {
      const pausedMs = performance.now() - started;
      this.pausedMs += pausedMs;
      this.onPause?.(undefined);
      this.log.info({ event: 'throttle.resumed', paused_ms: Math.round(pausedMs) }, `resumed after ${seconds(pausedMs)}`);
    }
  }

  private async read(): Promise<Health> {
    const t0 = performance.now();
    try {
      return await readHealth(this.db);
    } finally {
      this.healthMs += performance.now() - t0;
      this.healthReads++;
    }
  }

  /** The first signal over its limit; a standby whose replay position stays put while it has a gap lags by how long it has. */
  private over(health: Health): Over | undefined {
    const now = performance.now();
    const { maxReplicaLagMs, maxSlotLagBytes } = this.settings;
    for (const s of health.standbys) {
      let lag = s.replayGapBytes === 0 ? 0 : (s.replayLagMs ?? 0);
      if (s.replayGapBytes > 0) {
        const seen = this.stalls.get(s.name);
        if (!seen || seen.lsn !== s.replayLsn) this.stalls.set(s.name, { lsn: s.replayLsn, since: now });
        else lag = Math.max(lag, now - seen.since);
      } else this.stalls.delete(s.name);
      if (maxReplicaLagMs > 0 && lag > maxReplicaLagMs) {
        return {
          signal: 'replica_lag',
          source: s.name,
          value: Math.round(lag),
          limit: maxReplicaLagMs,
          text: `replica lag ${seconds(lag)} > ${seconds(maxReplicaLagMs)} (${s.name})`,
        };
      }
    }
    for (const slot of health.slots) {
      if (maxSlotLagBytes > 0 && slot.retainedBytes > maxSlotLagBytes) {
        return {
          signal: 'slot_lag',
          source: slot.name,
          value: slot.retainedBytes,
          limit: maxSlotLagBytes,
          text: `slot ${slot.name}${slot.active ? '' : ' (inactive)'} retains ${bytes(slot.retainedBytes)} > ${bytes(maxSlotLagBytes)}`,
        };
      }
    }
    return undefined;
  }
}
