/** caseguard simulate: many virtual users through the intake flow, concurrently. */
import { Option, type Command } from 'commander';
import { durationMs, examples, fraction, integer } from '../options.js';

interface SimulateFlags {
  users: number;
  concurrency: number;
  seed: number;
  legacyRate: number;
  crashRate: number;
  duration?: number;
  check?: boolean;
  format: 'table' | 'json';
}

export function defineSimulate(program: Command): void {
  program
    .command('simulate')
    .description('drive virtual users through the intake flow on the same handlers the bot runs')
    .option('--users <n>', 'virtual users', integer(1, 10_000_000), 50)
    .option('--concurrency <n>', 'users at once', integer(1, 256), 8)
    .option('--seed <n>', 'same seed, same answers and outcome counts', integer(-2_147_483_648, 2_147_483_647), 1)
    .option('--legacy-rate <p>', 'share of users whose start takes the old buggy path (progress without case)', fraction, 0)
    .option('--crash-rate <p>', 'share of starts that crash between their two writes', fraction, 0)
    .option('--duration <time>', 'keep starting users for this long, e.g. 30s or 2min (then --users is an upper bound)', durationMs)
    .option('--check', 'exit 1 if an orphan exists that the legacy path did not create, or a user failed')
    .addOption(new Option('--format <format>', 'output format').choices(['table', 'json']).default('table'))
    .addHelpText(
      'after',
      examples(
        'caseguard simulate --users 50',
        'caseguard simulate --users 1000 --concurrency 16 --legacy-rate 0.05   # reproduce the incident',
        'caseguard simulate --users 500 --crash-rate 0.1 --check             # the fix leaves no orphan',
        'caseguard simulate --duration 30s --concurrency 16                 # a throughput run',
      ),
    )
    .action(async (flags: SimulateFlags, command: Command) => {
      const { withDatabase } = await import('../context.js');
      const { simulate } = await import('../../core/index.js');
      const { printSimulateReport } = await import('../output/simulateReport.js');
      const { progressBar } = await import('../output/progress.js');
      const { ExitCode } = await import('../../core/index.js');
      await withDatabase(
        command,
        { judgesData: true, poolSize: flags.concurrency + 1, graceful: true, createsDatabase: true, pipeline: true, writes: true },
        async (ctx) => {
          const shape = await ctx.shape();
          // The intake writes; a standby or read-only database is refused before the first user.
          const { assertWritable } = await import('../../core/index.js');
          assertWritable(ctx.database, 'caseguard simulate');
          const usersGiven = command.getOptionValueSource('users') !== 'default';
          const users = flags.duration !== undefined && !usersGiven ? 10_000_000 : flags.users;
          const bar = progressBar(ctx.progress && process.stderr.isTTY && flags.duration === undefined, users, 'users');
          let report;
          try {
            // Per-user intake events, and the guard's warnings the user asked for with --legacy-rate,
            // would drown the report: they are summarised after it unless a log level was asked for.
            const log = ctx.log.child({ command: 'simulate' }, ctx.logLevelExplicit ? {} : { level: 'error' });
            const { keepsPreparedStatements } = await import('../../core/index.js');
            report = await simulate(ctx.database.db, shape, log, {
              preparedStatements: await keepsPreparedStatements(ctx.database.pool),
              users,
              durationMs: flags.duration,
              concurrency: flags.concurrency,
              seed: flags.seed,
              legacyRate: flags.legacyRate,
              crashRate: flags.crashRate,
              signal: ctx.signal,
              onUserDone: (done) => bar.update(done),
            });
          } catch (error) {
            // Interrupted: the users already run are still worth a report, then exit 130.
            const partial = (error as { report?: typeof report }).report;
            bar.stop();
            if (partial) printSimulateReport(partial, flags.format, ctx.useColor);
            throw error;
          } finally {
            bar.stop();
          }
          printSimulateReport(report, flags.format, ctx.useColor);
          if (!ctx.logLevelExplicit && report.recoveries > 0) {
            ctx.log.warn(
              { event: 'simulate.guard_summary', recoveries: report.recoveries },
              `${report.recoveries} legacy user(s) rescued by the guard (an ensure_case_exists.case_missing warning each; --log-level info shows them)`,
            );
          }
          if (report.errors > 0 && report.errors === report.connectionErrors) {
            const { ConnectionError } = await import('../../core/index.js');
            throw new ConnectionError(
              `every failing user failed for a privilege or the connection (${report.errors} of ${report.users}): ${report.firstErrors[0] ?? ''}`,
            );
          }
          if (flags.check && (report.orphans.unexplained > 0 || report.errors > 0)) process.exitCode = ExitCode.findings;
        },
      );
    });
}
