/** caseguard scan: the integrity checks; read-only; a CI gate. */
import path from 'node:path';
import { InvalidArgumentError, Option, type Command } from 'commander';
import { checkList } from '../../core/vocabulary.js';
import { examples, integer, pgDuration, pgDurationMs } from '../options.js';

interface ScanFlags {
  format: 'table' | 'json' | 'csv' | 'junit' | 'prometheus';
  limit: number;
  all?: boolean;
  failOn: 'error' | 'warn';
  maxFindings: number;
  user?: string;
  since?: Date;
  acceptPartial?: boolean;
  statementTimeout: string;
  output?: string;
}

/** A moment in the past; a minute of clock skew is tolerated. */
function timestamp(value: string): Date {
  const date = new Date(value);
  if (value.trim() === '' || Number.isNaN(date.getTime()))
    throw new InvalidArgumentError('expected a timestamp such as 2026-11-01T00:00:00Z');
  if (date.getTime() > Date.now() + 60_000)
    throw new InvalidArgumentError(`${date.toISOString()} is in the future: nothing changed since then`);
  return date;
}

export function defineScan(program: Command): void {
  program
    .command('scan')
    .description('run the integrity checks; read-only; exit 1 when findings pass the threshold')
    .addOption(new Option('--format <format>', 'output format').choices(['table', 'json', 'csv', 'junit', 'prometheus']).default('table'))
    .option('--limit <n>', 'samples shown per failing check', integer(0, 100_000), 20)
    .option('--all', 'every finding, streamed (with --format json or csv)')
    .addOption(new Option('--fail-on <severity>', 'lowest severity that fails the gate').choices(['error', 'warn']).default('error'))
    .option('--max-findings <n>', 'findings tolerated before the gate fails', integer(0, Number.MAX_SAFE_INTEGER), 0)
    .option('--user <id>', "only this user's rows")
    .option(
      '--since <timestamp>',
      'only progress and pointers updated (memory created) since then, and rows naming a case deleted since then',
      timestamp,
    )
    .option('--accept-partial', 'let a --since scan that cannot see deletions of cases (coverage changed-rows-only) pass the gate')
    .option('--statement-timeout <duration>', 'statement_timeout for the scan (0: none)', pgDuration, '10min')
    .option('-o, --output <file>', 'write the report to a file, atomically (temporary file, then rename)')
    .addHelpText(
      'after',
      `
Checks of severity error: ${checkList('error')};
of severity warn: ${checkList('warn')}.
A check on an absent optional table is reported as skipped; one a validated foreign key (or the
uuid type) makes impossible as proven, without reading its table. Exit 1 when an error-severity
check finds anything (--fail-on warn to include warnings, --max-findings N to tolerate some).
--since sees an orphan made by deleting its case only where deletions are tracked for the
whole window (caseguard migrate --track-deletions); elsewhere its coverage is changed-rows-only
and the gate fails unless --accept-partial.
${examples(
  'caseguard scan',
  'caseguard scan --format json > scan.json',
  'caseguard scan --format junit > caseguard-junit.xml      # a CI gate with a test report',
  'caseguard scan --format prometheus -o /var/lib/node_exporter/caseguard.prom',
  'caseguard scan --all --format csv > findings.csv',
  "caseguard scan --since '2026-11-27T00:00:00Z' --fail-on warn",
)}`,
    )
    .action(async (flags: ScanFlags, command: Command) => {
      const { UsageError } = await import('../../core/index.js');
      if (flags.all && !['json', 'csv'].includes(flags.format)) {
        throw new UsageError('--all streams every finding as --format json or csv; table, junit and prometheus show samples (--limit)');
      }
      const { withDatabase } = await import('../context.js');
      const { scan } = await import('../../core/index.js');
      const { BusyError, ConnectionError, safeMessage, withinDeadline } = await import('../../core/index.js');
      const { SqlState, sqlStateOf } = await import('../../core/index.js');
      const out = await import('../output/scanFormats.js');
      const { assertCanWriteFile, fileSink, stdoutSink } = await import('../output/sink.js');
      if (flags.output) assertCanWriteFile(path.resolve(flags.output));
      await withDatabase(command, { judgesData: true, poolSize: 1, readsOnly: true }, async (ctx) => {
        const shape = await ctx.shape();
        const sink = flags.output ? fileSink(flags.output) : stdoutSink();
        const stream = flags.format === 'json' ? out.streamJson : out.streamCsv;
        const streamAll = Boolean(flags.all) || flags.format === 'csv';
        // A client-side bound above the server's: a network gone silent never hangs a gate
        const statementMs = pgDurationMs(flags.statementTimeout);
        const boundMs = statementMs > 0 ? statementMs + ctx.run.networkTimeoutMs : undefined;
        const scanning = scan(ctx.database.db, shape, {
          databaseName: ctx.database.name,
          limit: flags.limit,
          userId: flags.user,
          since: flags.since,
          statementTimeout: flags.statementTimeout,
          gate: { failOn: flags.failOn, maxFindings: flags.maxFindings },
          acceptPartial: flags.acceptPartial,
          // CSV is one row per finding: always every finding, streamed.
          onAllFindings: streamAll ? (r, pages) => stream(sink, r, pages) : undefined,
        }).catch(async (error: unknown) => {
          await sink.discard();
          if (sqlStateOf(error) === SqlState.queryCanceled) {
            throw new BusyError(
              `the scan did not finish within --statement-timeout ${flags.statementTimeout} (waiting for a lock, or a large table); raise it, or narrow the scan with --since or --user`,
              { cause: error },
            );
          }
          throw error;
        });
        const report =
          boundMs === undefined || streamAll
            ? await scanning
            : await withinDeadline(scanning, boundMs).catch((error: unknown) => {
                if (!/went silent/.test(safeMessage(error))) throw error;
                throw new ConnectionError(
                  `the scan got no answer within ${Math.round(boundMs / 1000)}s (--statement-timeout and --network-timeout): the connection went silent; check the network path to the server, then rerun`,
                  { cause: error },
                );
              });
        ctx.log.info(
          {
            event: 'scan.completed',
            errors: report.summary.errors,
            warnings: report.summary.warnings,
            missing_cases: report.summary.missingCases,
            duration_ms: report.durationMs,
            coverage: report.coverage,
          },
          'scan completed',
        );
        if (report.coverage !== 'complete') {
          ctx.log.warn(
            { event: 'scan.partial', since: report.filters.since, accepted: Boolean(flags.acceptPartial) },
            `coverage changed-rows-only: a case deleted since ${report.filters.since} is not seen, so an orphan it made may be missed (caseguard migrate --track-deletions records deletions from now on)${flags.acceptPartial ? '; accepted (--accept-partial)' : '; the gate fails (--accept-partial lets it pass)'}`,
          );
        }
        const render = {
          // a file gets every character; a terminal a table that fits its width
          table: () => out.renderTableReport(report, ctx.useColor && !flags.output, flags.output ? Number.POSITIVE_INFINITY : undefined),
          json: () => out.renderJson(report),
          csv: () => '', // streamed above
          junit: () => out.renderJunit(report, flags.failOn),
          prometheus: () => out.renderPrometheus(report),
        }[flags.format];
        try {
          // with --all (and for CSV) the report was streamed into the sink already
          if (!streamAll) await sink.write(render());
          await sink.commit();
        } catch (error) {
          await sink.discard();
          throw error;
        }
        process.exitCode = out.GATE_EXIT_CODE[report.summary.gate];
      });
    });
}
