/** caseguard quarantine list|restore: the rows recover moved aside, and putting them back. */
import { Option, type Command } from 'commander';
import { examples, integer } from '../options.js';

export function defineQuarantine(program: Command): void {
  const quarantine = program
    .command('quarantine')
    .description('the rows recover moved aside (list), and putting them back (restore)')
    .addHelpText(
      'after',
      examples('caseguard quarantine list', 'caseguard quarantine list --run 12 --format json', 'caseguard quarantine restore 12'),
    )
    .helpCommand(true);

  quarantine
    .command('list')
    .description('quarantined rows, oldest first')
    .option('--run <id>', "only this run's rows", integer(1, Number.MAX_SAFE_INTEGER))
    .option('--all', 'include rows already restored')
    .option('--limit <n>', 'rows to show', integer(1, 1_000_000), 50)
    .addOption(new Option('--format <format>', 'output format').choices(['table', 'json']).default('table'))
    .addHelpText(
      'after',
      examples(
        'caseguard quarantine list',
        'caseguard quarantine list --run 12 --all',
        'caseguard quarantine list --format json --limit 1000',
      ),
    )
    .action(async (flags: { run?: number; all?: boolean; limit: number; format: 'table' | 'json' }, command: Command) => {
      const { withDatabase } = await import('../context.js');
      const { listQuarantine } = await import('../../core/recover/quarantine.js');
      const { renderTable } = await import('../output/table.js');
      const { visible } = await import('../output/scanFormats.js');
      await withDatabase(command, { judgesData: false, poolSize: 1, readsOnly: true }, async (ctx) => {
        const shape = await ctx.shape();
        const result = shape.hasJournal
          ? await listQuarantine(ctx.database.db, { runId: flags.run, includeRestored: Boolean(flags.all), limit: flags.limit })
          : { rows: [], total: 0 };
        if (flags.format === 'json') return void process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
        if (result.total === 0) return void process.stdout.write('The quarantine is empty.\n');
        const table = renderTable(
          ['id', 'run', 'table', 'reason', 'quarantined', 'restored', 'row'],
          result.rows.map((r) => [
            r.quarantineId,
            r.runId,
            r.sourceTable,
            r.reason,
            r.quarantinedAt,
            r.restoredAt ?? '',
            visible(JSON.stringify(r.rowData)).slice(0, 120),
          ]),
          ctx.useColor,
        );
        process.stdout.write(`${table}\nShowing ${result.rows.length} of ${result.total}.\n`);
      });
    });

  quarantine
    .command('restore')
    .argument('<run>', 'the run whose quarantined rows go back', integer(1, Number.MAX_SAFE_INTEGER))
    .description('put back the rows a run quarantined (a row whose key is taken now is reported, not overwritten)')
    .option('--dry-run', 'say what would be restored and change nothing')
    .option('-y, --yes', 'do not ask for confirmation (required without a terminal)')
    .addOption(new Option('--format <format>', 'output format').choices(['table', 'json']).default('table'))
    .addHelpText(
      'after',
      examples(
        'caseguard quarantine restore 12 --dry-run',
        'caseguard quarantine restore 12          # shows the count and asks',
        'caseguard quarantine restore 12 --yes',
      ),
    )
    .action(async (runId: number, flags: { dryRun?: boolean; yes?: boolean; format: 'table' | 'json' }, command: Command) => {
      const { withDatabase } = await import('../context.js');
      const { restoreRun } = await import('../../core/recover/quarantine.js');
      const { ExitCode } = await import('../../core/errors.js');
      const { assertCanConfirm, confirmWrite } = await import('../prompts.js');
      if (!flags.dryRun)
        assertCanConfirm({
          yes: Boolean(flags.yes),
          isTerminal: Boolean(process.stdin.isTTY && process.stdout.isTTY),
          what: 'restore rows',
        });
      await withDatabase(command, { judgesData: true, poolSize: 3, graceful: true }, async (ctx) => {
        const shape = await ctx.shape();
        if (!flags.dryRun) await ctx.assertCanWrite('caseguard quarantine restore');
        if (!flags.dryRun && !flags.yes) {
          // Asked before any lock or journal row: what the dry run finds is what would go back.
          const { listQuarantine } = await import('../../core/recover/quarantine.js');
          const waiting = shape.hasJournal ? (await listQuarantine(ctx.database.db, { runId, includeRestored: false, limit: 0 })).total : 0;
          if (
            waiting > 0 &&
            !(await confirmWrite(`Restore ${waiting} row(s) quarantined by run ${runId}?`, {
              yes: false,
              isTerminal: ctx.isTerminal,
              what: 'restore rows',
            }))
          ) {
            process.stdout.write('Declined: nothing was changed.\n');
            process.exitCode = ExitCode.findings;
            return;
          }
        }
        const result = await restoreRun(ctx.database, runId, {
          dryRun: Boolean(flags.dryRun),
          hasJournal: shape.hasJournal,
          signal: ctx.signal,
          lockWaitMs: ctx.lockWaitMs,
        });
        if (flags.format === 'json') return void process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
        if (result.dryRun)
          return void process.stdout.write(`Dry run: the rows run ${runId} quarantined can be restored; nothing was changed.\n`);
        const lines = [`Restored ${result.restored} row(s) (run ${result.runId}).`];
        for (const o of result.outcomes.filter((x) => !x.restored))
          lines.push(`not restored: quarantine ${o.quarantineId} (${o.sourceTable}): ${o.reason}`);
        process.stdout.write(`${lines.join('\n')}\n`);
        if (result.notRestored > 0) process.exitCode = ExitCode.findings;
      });
    });
}
