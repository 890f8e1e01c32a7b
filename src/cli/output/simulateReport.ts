/** Prints a simulate report: a table on stdout, or JSON. */
import type { SimulateReport } from '../../core/index.js';
import { renderTable } from './table.js';

export function printSimulateReport(report: SimulateReport, format: 'table' | 'json', useColor: boolean): void {
  if (format === 'json') {
    process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
    return;
  }
  const o = report.outcomes;
  const summary = renderTable(
    ['measure', 'value'],
    [
      ['users', report.users],
      ['completed', o.completed],
      ['cancelled', o.cancelled],
      ['abandoned', o.abandoned],
      ['legacy starts (old buggy path)', o.legacy_orphan],
      ['crashed starts (fixed path, rolled back)', report.crashes.fixedPath],
      ['cases', report.cases],
      ['progress rows', report.progressRows],
      ['memory rows', report.memoryRows],
      ['orphans', report.orphans.total],
      ['  from the legacy path', report.orphans.legacy],
      ['  from crashes on the legacy path', report.orphans.crash],
      ['  unexplained', report.orphans.unexplained],
      ['legacy starts refused by the foreign key', report.legacyRefusedByForeignKey],
      ['ensure-case recoveries', report.recoveries],
      ['re-prompts (invalid answers)', report.reprompts],
      ['errors', report.errors],
      ['duration', `${(report.durationMs / 1000).toFixed(2)} s`],
      ['completed intakes per second', report.completedPerSecond.toFixed(1)],
    ],
    useColor,
  );
  const latency = renderTable(
    ['handler', 'calls', 'p50 ms', 'p95 ms', 'p99 ms', 'max ms'],
    Object.entries(report.latency).map(([h, s]) => [h, s.count, s.p50Ms, s.p95Ms, s.p99Ms, s.maxMs]),
    useColor,
  );
  const errors = report.firstErrors.length > 0 ? `\nFirst errors:\n${report.firstErrors.map((e) => `  ${e}`).join('\n')}\n` : '';
  process.stdout.write(`${summary}\n${latency}\n${errors}`);
}
