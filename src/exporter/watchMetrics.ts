/**
 * caseguard watch's own metrics, served beside the exporter's (same registry, same /metrics).
 * Names are a public interface, documented in the README's Monitoring section.
 */
import { Counter, Gauge, Summary, type Registry } from 'prom-client';
import type { Applied, SlotLag } from '../core/index.js';

export interface WatchMetrics {
  applied(applied: Applied): void;
  lag(lag: SlotLag): void;
}

export function createWatchMetrics(registry: Registry): WatchMetrics {
  const registers = [registry];
  const commits = new Counter({ name: 'caseguard_watch_commits_total', help: 'Commits read from the slot and applied', registers });
  const changes = new Counter({ name: 'caseguard_watch_changes_total', help: 'Row changes read from the slot and applied', registers });
  const detected = new Counter({
    name: 'caseguard_watch_orphans_detected_total',
    help: 'Rows found naming a missing case (watch.orphan_detected), by check',
    labelNames: ['check'],
    registers,
  });
  const resolved = new Counter({
    name: 'caseguard_watch_orphans_resolved_total',
    help: 'Rows that no longer name a missing case (watch.orphan_resolved), by check',
    labelNames: ['check'],
    registers,
  });
  const delay = new Summary({
    name: 'caseguard_watch_apply_delay_seconds',
    help: 'From a commit to its findings being applied, over the last 10 minutes',
    percentiles: [0.5, 0.9, 0.99],
    maxAgeSeconds: 600,
    ageBuckets: 5,
    registers,
  });
  const retained = new Gauge({
    name: 'caseguard_watch_slot_retained_bytes',
    help: 'WAL the slot keeps the server from recycling',
    registers,
  });
  const unconfirmed = new Gauge({ name: 'caseguard_watch_slot_unconfirmed_bytes', help: 'WAL not yet acknowledged by watch', registers });
  return {
    applied(a) {
      commits.inc(a.commits);
      changes.inc(a.changes);
      for (const f of a.detected) detected.inc({ check: f.check });
      for (const f of a.resolved) resolved.inc({ check: f.check });
      delay.observe(a.delayMs / 1000);
    },
    lag(l) {
      retained.set(l.retainedBytes);
      unconfirmed.set(l.unconfirmedBytes);
    },
  };
}
