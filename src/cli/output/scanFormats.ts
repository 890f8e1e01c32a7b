/**
 * scan's output formats. Every format is safe for hostile data (quotes, tabs, newlines,
 * unicode, SQL-looking text in user ids): JSON by construction, CSV quoted per RFC 4180, JUnit
 * escaped for XML 1.0, table cells with control characters made visible.
 */
import { ExitCode, type CheckResult, type Finding, type GateVerdict, type ScanReport } from '../../core/index.js';
import type { Sink } from './sink.js';
import { fit, painter, renderTable, terminalWidth } from './table.js';

export type ScanFormat = 'table' | 'json' | 'csv' | 'junit' | 'prometheus';

/** The process exit code of a gate's verdict. */
export const GATE_EXIT_CODE: Record<GateVerdict, ExitCode> = { passed: ExitCode.ok, failed: ExitCode.findings };

/** The report as the JSON contract has it: the summary carries the gate's exit code too. */
function contract(report: ScanReport) {
  return { ...report, summary: { ...report.summary, exitCode: GATE_EXIT_CODE[report.summary.gate] } };
}

/** The report as JSON; each check says how many findings its samples leave out (--limit). */
export function renderJson(report: ScanReport): string {
  const checks = report.checks.map((c) => ({ ...c, omitted: c.count - c.samples.length }));
  return `${JSON.stringify({ ...contract(report), checks }, null, 2)}\n`;
}

const CSV_COLUMNS = ['check', 'severity', 'table', 'user_id', 'case_id', 'canonical_id', 'owner', 'memory_id', 'detail'] as const;

export function csvField(value: unknown): string {
  const text = value === null || value === undefined ? '' : String(value);
  return /[",\r\n]/.test(text) || /^\s|\s$/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

export function csvHeader(): string {
  return `${CSV_COLUMNS.join(',')}\r\n`;
}

export function csvRows(findings: Finding[], severityOf: (f: Finding) => string): string {
  return findings
    .map(
      (f) =>
        [f.check, severityOf(f), f.table, f.user_id, f.case_id, f.canonical_id, f.owner, f.memory_id, f.detail].map(csvField).join(',') +
        '\r\n',
    )
    .join('');
}

/** XML 1.0 text: escaped, and characters XML cannot carry at all replaced with U+FFFD. */
export function xml(text: unknown): string {
  return (
    String(text ?? '')
      // eslint-disable-next-line no-control-regex -- these are exactly the characters XML 1.0 forbids
      .replace(/[\u0000-\u0008\u000B\u000C\u000E-\u001F\uFFFE\uFFFF]/g, '\uFFFD')
      .replace(/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g, '\uFFFD')
      .replace(/&/g, '&amp;')
      .replace(/</g, '&lt;')
      .replace(/>/g, '&gt;')
      .replace(/"/g, '&quot;')
      .replace(/'/g, '&apos;')
  );
}

function describeFinding(f: Finding): string {
  const parts = [`${f.table}: user_id=${JSON.stringify(f.user_id)} case_id=${JSON.stringify(f.case_id)}`];
  if (f.canonical_id && f.canonical_id !== f.case_id) parts.push(`canonical=${f.canonical_id}`);
  if (f.owner) parts.push(`owner=${JSON.stringify(f.owner)}`);
  if (f.memory_id !== null && f.memory_id !== undefined) parts.push(`memory_id=${f.memory_id}`);
  parts.push(`(${f.detail})`);
  return parts.join(' ');
}

/**
 * A testcase per check. It fails exactly when it counts toward scan's exit code: it has findings,
 * its severity is at or above --fail-on, and the gate failed (--max-findings tolerated none of
 * it). Other findings (warnings, tolerated ones) are a passing testcase with them in system-out,
 * so a CI that reads the report agrees with the gate.
 */
export function renderJunit(report: ScanReport, failOn: 'error' | 'warn'): string {
  const counts = (c: CheckResult) => report.summary.gate === 'failed' && c.count > 0 && (failOn === 'warn' || c.severity === 'error');
  const failures = report.checks.filter(counts).length;
  const skipped = report.checks.filter((c) => c.status === 'skipped').length;
  const seconds = (report.durationMs / 1000).toFixed(3);
  const cases = report.checks.map((c) => {
    const open = `    <testcase classname="caseguard.scan" name="${xml(c.id)}" time="0">`;
    if (c.status === 'skipped') return `${open}\n      <skipped message="${xml(c.reason)}"/>\n    </testcase>`;
    if (c.status === 'pass') return `${open}</testcase>`;
    if (c.status === 'proven')
      return `${open}
      <system-out>${xml(`proven by ${c.provenBy}: nothing to read`)}</system-out>
    </testcase>`;
    const message = `${c.count} finding(s)${c.distinctCases !== undefined ? `, ${c.distinctCases} distinct case id(s)` : ''} (${c.severity})`;
    const shown = c.samples.length < c.count ? `\n(${c.count - c.samples.length} more not shown; --limit)` : '';
    const body = `${c.title}\n${c.samples.map(describeFinding).join('\n')}${shown}`;
    if (!counts(c)) return `${open}\n      <system-out>${xml(`${message}\n${body}`)}</system-out>\n    </testcase>`;
    return `${open}\n      <failure message="${xml(message)}" type="${xml(c.severity)}">${xml(body)}</failure>\n    </testcase>`;
  });
  // a partial scan that fails the gate is a failing testcase of its own, so the report agrees with the exit code
  if (report.coverage !== 'complete' && report.summary.gate === 'failed') {
    cases.push(
      `    <testcase classname="caseguard.scan" name="coverage" time="0">
      <failure message="${xml(`coverage ${report.coverage}`)}" type="coverage">${xml(
        `a case deleted since ${report.filters.since} is not seen: no deletion tracking over the whole window (caseguard migrate --track-deletions), and --accept-partial was not given`,
      )}</failure>
    </testcase>`,
    );
  }
  const tests = cases.length;
  const failed = failures + (cases.length - report.checks.length);
  return [
    '<?xml version="1.0" encoding="UTF-8"?>',
    `<testsuites name="caseguard" tests="${tests}" failures="${failed}" skipped="${skipped}" time="${seconds}">`,
    `  <testsuite name="caseguard scan" tests="${tests}" failures="${failed}" errors="0" skipped="${skipped}" time="${seconds}" timestamp="${xml(report.startedAt)}">`,
    `    <properties>
      <property name="coverage" value="${xml(report.coverage)}"/>
    </properties>`,
    ...cases,
    '  </testsuite>',
    '</testsuites>',
    '',
  ].join('\n');
}

/** Prometheus text exposition, for node_exporter's textfile collector. */
export function renderPrometheus(report: ScanReport): string {
  const lines = [
    '# HELP caseguard_findings Findings of one caseguard check at the last scan.',
    '# TYPE caseguard_findings gauge',
    ...report.checks
      .filter((c) => c.status !== 'skipped')
      .map((c) => `caseguard_findings{check="${c.id}",severity="${c.severity}"} ${c.count}`),
    '# HELP caseguard_check_skipped 1 when a check was skipped (its optional table is absent).',
    '# TYPE caseguard_check_skipped gauge',
    ...report.checks.map((c) => `caseguard_check_skipped{check="${c.id}"} ${c.status === 'skipped' ? 1 : 0}`),
    '# HELP caseguard_check_proven 1 when a validated foreign key or the uuid type proves a check (nothing was read for it).',
    '# TYPE caseguard_check_proven gauge',
    ...report.checks.map((c) => `caseguard_check_proven{check="${c.id}"} ${c.status === 'proven' ? 1 : 0}`),
    '# HELP caseguard_scan_coverage_complete 1 when the scan looked for every finding; 0 for a --since scan blind to deleted cases.',
    '# TYPE caseguard_scan_coverage_complete gauge',
    `caseguard_scan_coverage_complete ${report.coverage === 'complete' ? 1 : 0}`,
    '# HELP caseguard_missing_cases Distinct case ids referenced without a case.',
    '# TYPE caseguard_missing_cases gauge',
    `caseguard_missing_cases ${report.summary.missingCases}`,
    '# HELP caseguard_scan_duration_seconds How long the scan took.',
    '# TYPE caseguard_scan_duration_seconds gauge',
    `caseguard_scan_duration_seconds ${(report.durationMs / 1000).toFixed(3)}`,
    '# HELP caseguard_scan_timestamp_seconds When the scan started.',
    '# TYPE caseguard_scan_timestamp_seconds gauge',
    `caseguard_scan_timestamp_seconds ${Math.floor(Date.parse(report.startedAt) / 1000)}`,
  ];
  return `${lines.join('\n')}\n`;
}

/** Control characters shown as escapes, so a hostile id cannot redraw the terminal. */
export function visible(text: unknown): string {
  // eslint-disable-next-line no-control-regex -- control characters are what must not reach a terminal raw
  return String(text ?? '').replace(/[\u0000-\u001F\u007F-\u009F]/g, (c) => JSON.stringify(c).slice(1, -1));
}

export function renderTableReport(report: ScanReport, useColor: boolean, maxWidth = terminalWidth()): string {
  const paint = painter(useColor);
  const status = (c: CheckResult) =>
    c.status === 'pass'
      ? paint.green('pass')
      : c.status === 'proven'
        ? paint.green(`proven (${c.provenBy})`)
        : c.status === 'skipped'
          ? paint.gray(`skipped (${c.reason})`)
          : c.severity === 'error'
            ? paint.red('FAIL')
            : paint.yellow('warn');
  const summary = renderTable(
    ['check', 'severity', 'status', 'findings', 'distinct cases'],
    report.checks.map((c) => [c.id, c.severity, status(c), c.count, c.distinctCases ?? '']),
    useColor,
    maxWidth,
  );
  const sections = report.checks
    .filter((c) => c.status === 'fail')
    .map((c) => {
      const head = paint.bold(fit(`${c.id}: ${c.title} (showing ${c.samples.length} of ${c.count})`, maxWidth));
      const table = renderTable(
        ['table', 'user_id', 'case_id', 'canonical id', 'detail'],
        c.samples.map((f) => [
          f.table,
          visible(f.user_id),
          visible(f.case_id),
          f.canonical_id && f.canonical_id !== f.case_id ? f.canonical_id : '',
          visible(f.owner ? `${f.detail}: ${f.owner}` : f.detail),
        ]),
        useColor,
        maxWidth,
      );
      return `${head}\n${table}`;
    });
  const s = report.summary;
  const verdict = s.gate === 'passed' ? paint.green('OK') : paint.red('FAILED');
  const footer = `${verdict}: ${s.errors} error finding(s), ${s.warnings} warning(s), ${s.missingCases} missing case(s); ${report.durationMs} ms`;
  const coverage =
    report.coverage === 'complete'
      ? []
      : [
          paint.yellow(
            fit(
              `coverage: changed rows only since ${report.filters.since}: a case deleted in that window is not seen (no deletion tracking over it: caseguard migrate --track-deletions)`,
              maxWidth,
            ),
          ),
        ];
  return [summary, ...sections, ...coverage, footer, ''].join('\n');
}

/** --all as JSON: the report with every finding in place of the samples, streamed. */
export async function streamJson(sink: Sink, report: ScanReport, pages: AsyncIterable<Finding[]>): Promise<void> {
  const write = (text: string) => sink.write(text);
  const { checks, ...head } = contract(report);
  const headJson = JSON.stringify(head, null, 2);
  await write(`${headJson.slice(0, -2)},\n  "checks": [`);
  const iterator = pages[Symbol.asyncIterator]();
  let pending: Finding[] = [];
  let done = false;
  for (const [i, check] of checks.entries()) {
    const { samples: _samples, ...meta } = check;
    await write(`${i ? ',' : ''}\n    ${JSON.stringify({ ...meta, omitted: 0 }).slice(0, -1)},"samples":[`);
    let first = true;
    for (;;) {
      if (pending.length === 0 && !done) {
        const next = await iterator.next();
        if (next.done) done = true;
        else pending = next.value;
      }
      if (pending.length === 0) break;
      const mine = pending.findIndex((f) => f.check !== check.id);
      const take = mine < 0 ? pending : pending.slice(0, mine);
      pending = mine < 0 ? [] : pending.slice(mine);
      if (take.length > 0) {
        await write((first ? '\n      ' : ',\n      ') + take.map((f) => JSON.stringify(f)).join(',\n      '));
        first = false;
      }
      if (mine >= 0) break;
    }
    await write(first ? ']}' : '\n    ]}');
  }
  await write('\n  ]\n}\n');
}

/** --all as CSV: one row per finding, streamed. */
export async function streamCsv(sink: Sink, report: ScanReport, pages: AsyncIterable<Finding[]>): Promise<void> {
  const write = (text: string) => sink.write(text);
  const severity = new Map(report.checks.map((c) => [c.id, c.severity]));
  await write(csvHeader());
  for await (const page of pages) await write(csvRows(page, (f) => severity.get(f.check) ?? ''));
}
