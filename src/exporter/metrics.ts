/**
 * The exporter's metrics (prom-client). Names and labels are a public interface, documented in
 * the README's Monitoring section; monitoring/alerts.yml and monitoring/dashboard.json use them.
 * Values come from one snapshot at a time; a failed refresh keeps the last ones.
 */
import { Counter, Gauge, Registry } from 'prom-client';
import { FUNNEL_STAGES, type ErrorClass, type Snapshot } from '../core/index.js';

/** funnel stage → the label value (snake case, as Prometheus labels go). */
const STAGE_LABEL: Record<(typeof FUNNEL_STAGES)[number], string> = {
  started: 'started',
  completed: 'completed',
  cancelled: 'cancelled',
  abandoned: 'abandoned',
  inProgress: 'in_progress',
};

export interface ExporterMetrics {
  registry: Registry;
  /** Sets every value from a snapshot read at `at`. */
  apply(snapshot: Snapshot, at: Date): void;
  /** Sets the checks' values alone (caseguard watch's, which are current at every scrape). */
  applyChecks(scan: Snapshot['scan']): void;
  /** A refresh failed: caseguard_up 0 with the error's class; the last values stay. */
  failed(errorClass: ErrorClass): void;
  /** How long the last refresh took, whatever its outcome. */
  took(seconds: number): void;
}

export function createMetrics(): ExporterMetrics {
  const registry = new Registry();
  const gauge = <L extends string>(name: string, help: string, labelNames: readonly L[] = []) =>
    new Gauge<L>({ name, help, labelNames, registers: [registry] });

  const up = gauge('caseguard_up', '1 when the last refresh read the database; 0 with the error class when it failed', ['error']);
  const refreshFailures = new Counter({
    name: 'caseguard_refresh_failures_total',
    help: 'Refreshes that failed, by error class',
    labelNames: ['error'],
    registers: [registry],
  });
  const lastRefresh = gauge('caseguard_last_refresh_timestamp_seconds', 'When the last successful refresh read the database (Unix time)');
  const refreshDuration = gauge('caseguard_refresh_duration_seconds', 'How long the last refresh took');
  const findings = gauge('caseguard_findings', 'Findings of one check (the numbers caseguard scan reports)', ['check', 'severity']);
  const skipped = gauge('caseguard_check_skipped', '1 when a check was skipped (its optional table is absent)', ['check']);
  const missingCases = gauge('caseguard_missing_cases', 'Distinct case ids referenced by progress, memory or pointers without a case');
  const recovered = gauge(
    'caseguard_recovered_cases',
    'Cases re-created, by source: ensure_case (the intake guard) or recover (caseguard recover)',
    ['source'],
  );
  const recoveredByDay = gauge('caseguard_recovered_cases_by_day', 'Cases re-created on one day (UTC), by source, over the last --days', [
    'source',
    'day',
  ]);
  const recoverRuns = gauge('caseguard_recover_runs', 'caseguard recover runs (not dry runs) in the journal, by status', ['status']);
  const intakes = gauge(
    'caseguard_intakes',
    'Intakes started on one day (UTC) over the last --days, by stage: started, completed, cancelled, abandoned, in_progress',
    ['stage', 'day'],
  );
  const intakesWindow = gauge('caseguard_intakes_window', 'Intakes started over the last --days, by stage', ['stage']);
  const completionRatio = gauge(
    'caseguard_intake_completion_ratio',
    'Completed over ended (completed, cancelled, abandoned) intakes started in the last --days; NaN when none ended',
  );
  // "percentile", not "quantile": that label belongs to summaries, and these are gauges read from the database.
  const completionSeconds = gauge(
    'caseguard_intake_completion_seconds',
    'Time from start to completion of the intakes completed in the last --days, by percentile (50, 95)',
    ['percentile'],
  );

  const applyChecks = (scan: Snapshot['scan']) => {
    findings.reset();
    for (const check of scan.checks) {
      skipped.set({ check: check.id }, check.status === 'skipped' ? 1 : 0);
      if (check.status !== 'skipped') findings.set({ check: check.id, severity: check.severity }, check.count);
    }
    missingCases.set(scan.summary.missingCases);
  };

  return {
    registry,
    applyChecks,
    apply(snapshot, at) {
      up.reset();
      up.set({ error: '' }, 1);
      lastRefresh.set(at.getTime() / 1000);
      applyChecks(snapshot.scan);
      recoveredByDay.reset();
      for (const [source, counts] of Object.entries(snapshot.recoveries.cases)) {
        recovered.set({ source }, counts.total);
        for (const [day, n] of Object.entries(counts.byDay)) recoveredByDay.set({ source, day }, n);
      }
      recoverRuns.reset();
      for (const [status, n] of Object.entries(snapshot.recoveries.recoverRuns ?? {})) recoverRuns.set({ status }, n ?? 0);
      intakes.reset();
      for (const day of snapshot.funnel.days) {
        for (const stage of FUNNEL_STAGES) intakes.set({ stage: STAGE_LABEL[stage], day: day.day }, day[stage]);
      }
      for (const stage of FUNNEL_STAGES) intakesWindow.set({ stage: STAGE_LABEL[stage] }, snapshot.funnel.totals[stage]);
      completionRatio.set(snapshot.funnel.completionRatio ?? Number.NaN);
      completionSeconds.set({ percentile: '50' }, snapshot.funnel.completionSeconds.p50 ?? Number.NaN);
      completionSeconds.set({ percentile: '95' }, snapshot.funnel.completionSeconds.p95 ?? Number.NaN);
    },
    failed(errorClass) {
      up.reset();
      up.set({ error: errorClass }, 0);
      refreshFailures.inc({ error: errorClass });
    },
    took(seconds) {
      refreshDuration.set(seconds);
    },
  };
}
