/** caseguard exporter: Prometheus metrics of the checks, the recoveries and the intake funnel. */
import { Option, type Command } from 'commander';
import { durationMs, examples, integer, listenAddress, pgDuration } from '../options.js';

interface ExporterFlags {
  listen: { host: string; port: number };
  interval: number;
  refreshOnScrape?: boolean;
  days: number;
  abandonedAfter: number;
  statementTimeout: string;
}

export function defineExporter(program: Command): void {
  program
    .command('exporter')
    .description('serve Prometheus metrics: the checks, recoveries, the intake funnel')
    .addOption(
      new Option('--listen <host:port>', 'address to serve /metrics and /healthz on')
        .argParser(listenAddress)
        .default(listenAddress('127.0.0.1:9563'), '127.0.0.1:9563'),
    )
    .addOption(new Option('--interval <duration>', 'refresh the values this often').argParser(durationMs).default(60_000, '60s'))
    .option('--refresh-on-scrape', 'refresh on each scrape instead of on the interval')
    .option('--days <n>', 'days of funnel and recoveries by day, today (UTC) included', integer(1, 366), 14)
    .addOption(
      new Option('--abandoned-after <duration>', 'an intake in progress untouched this long counts as abandoned')
        .argParser(durationMs)
        .default(86_400_000, '24h'),
    )
    .option('--statement-timeout <duration>', 'statement_timeout of each refresh (0: none)', pgDuration, '30s')
    .addHelpText(
      'after',
      `
Each refresh reads the seven checks (the numbers caseguard scan reports), the recoveries and the
intake funnel in one read-only snapshot, on a connection it closes afterwards; it works for a
role with only USAGE and SELECT, and on a standby. A failed refresh keeps the last values and
sets caseguard_up 0 with the error class as a label. SIGTERM or Ctrl-C stops it (exit 0).
Metric names: see "Monitoring" in the README; alert rules and a Grafana dashboard are in
monitoring/.
${examples(
  'caseguard exporter',
  'caseguard exporter --listen 0.0.0.0:9563 --interval 5min',
  'caseguard exporter --refresh-on-scrape --statement-timeout 20s',
  'curl -s localhost:9563/metrics | grep caseguard_findings',
)}`,
    )
    .action(async (flags: ExporterFlags, command: Command) => {
      const { withDatabase } = await import('../context.js');
      const { readSnapshot } = await import('../../core/index.js');
      const { startExporter } = await import('../../exporter/server.js');
      // One connection, closed as soon as a refresh is done: nothing held between refreshes.
      await withDatabase(command, { judgesData: true, poolSize: 1, idleTimeoutMs: 1, graceful: true }, async (ctx) => {
        // After a failed refresh the next one reaches the hosts again: a failover is followed.
        let database = ctx.database;
        let reach = false;
        const read = async () => {
          if (reach) {
            const again = await ctx.reopen();
            if (database !== ctx.database) await database.close();
            database = again;
            reach = false;
          }
          return readSnapshot(database.db, {
            databaseName: database.name,
            days: flags.days,
            abandonedAfterMs: flags.abandonedAfter,
            statementTimeout: flags.statementTimeout,
          }).catch((error: unknown) => {
            reach = true;
            throw error;
          });
        };
        const exporter = await startExporter({
          host: flags.listen.host,
          port: flags.listen.port,
          refresh: flags.refreshOnScrape ? 'scrape' : { intervalMs: flags.interval },
          log: ctx.log,
          read,
        });
        ctx.log.info({ event: 'exporter.listening', url: exporter.url }, `serving ${exporter.url}/metrics`);
        if (!ctx.signal.aborted) await new Promise((resolve) => ctx.signal.addEventListener('abort', resolve, { once: true }));
        await exporter.close();
        if (database !== ctx.database) await database.close();
        ctx.log.info({ event: 'exporter.stopped' }, 'the exporter stopped');
      });
    });
}
