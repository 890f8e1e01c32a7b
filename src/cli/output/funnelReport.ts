/** The intake funnel as a table: one row per day, a total, the ratio and completion times. */
import type { FunnelDay, FunnelReport } from '../../core/index.js';
import { painter, renderTable } from './table.js';

const percent = (day: Omit<FunnelDay, 'day'>) => {
  const ended = day.completed + day.cancelled + day.abandoned;
  return ended === 0 ? '' : `${((100 * day.completed) / ended).toFixed(1)}%`;
};

/** 95 s → "1m 35s"; null → "n/a". */
function span(seconds: number | null): string {
  if (seconds === null) return 'n/a';
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${s % 60}s`;
  return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
}

export function renderFunnel(report: FunnelReport, useColor: boolean): string {
  const paint = painter(useColor);
  const row = (label: string, d: Omit<FunnelDay, 'day'>) => [
    label,
    d.started,
    d.completed,
    d.cancelled,
    d.abandoned,
    d.inProgress,
    percent(d),
  ];
  const table = renderTable(
    ['day (UTC)', 'started', 'completed', 'cancelled', 'abandoned', 'in progress', 'completed of ended'],
    [...report.days.map((d) => row(d.day, d)), row(paint.bold('total'), report.totals)],
    useColor,
  );
  const ratio = report.completionRatio === null ? 'n/a (no intake ended yet)' : `${(100 * report.completionRatio).toFixed(1)}%`;
  return `${table}\nCompletion ratio: ${ratio}. Time to complete: p50 ${span(report.completionSeconds.p50)}, p95 ${span(report.completionSeconds.p95)}.\n`;
}
