/** caseguard funnel: the intake funnel by day, in the terminal or as JSON. */
import { Option, type Command } from 'commander';
import { durationMs, examples, integer } from '../options.js';

interface FunnelFlags {
  days: number;
  abandonedAfter: number;
  format: 'table' | 'json';
}

export function defineFunnel(program: Command): void {
  program
    .command('funnel')
    .description('the intake funnel by day in the terminal')
    .option('--days <n>', 'days shown, today (UTC) included', integer(1, 366), 14)
    .addOption(
      new Option('--abandoned-after <duration>', 'an intake in progress untouched this long counts as abandoned')
        .argParser(durationMs)
        .default(86_400_000, '24h'),
    )
    .addOption(new Option('--format <format>', 'output format').choices(['table', 'json']).default('table'))
    .addHelpText(
      'after',
      `
One row per day (UTC) on which intakes started: how many, and what became of them. The
completion ratio is completed over ended (completed, cancelled, abandoned). Read-only; the same
numbers as the exporter's caseguard_intakes.
${examples('caseguard funnel', 'caseguard funnel --days 30 --abandoned-after 48h', 'caseguard funnel --format json | jq .completionRatio')}`,
    )
    .action(async (flags: FunnelFlags, command: Command) => {
      const { withDatabase } = await import('../context.js');
      const { readFunnel } = await import('../../core/index.js');
      const { renderFunnel } = await import('../output/funnelReport.js');
      await withDatabase(command, { judgesData: false, poolSize: 1, readsOnly: true }, async (ctx) => {
        await ctx.shape();
        const report = await ctx.database.db.transaction(
          (tx) => readFunnel(tx, { days: flags.days, abandonedAfterMs: flags.abandonedAfter }),
          {
            accessMode: 'read only',
          },
        );
        process.stdout.write(flags.format === 'json' ? `${JSON.stringify(report, null, 2)}\n` : renderFunnel(report, ctx.useColor));
      });
    });
}
