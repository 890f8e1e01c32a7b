/** caseguard quarantine list|restore: the rows recover moved aside, and putting them back. */
import { Option, type Command } from 'commander';
import { examples, integer, throttleOf, throttleOptions, type ThrottleFlags } from '../options.js';

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
      const { listQuarantine } = await import('../../core/index.js');
      const { renderTable } = await import('../output/table.js');
      const { visible } = await import('../output/scanFormats.js');
      await withDatabase(command, { judgesData: false, poolSize: 1, readsOnly: true }, async (ctx) => {
        const shape = await ctx.shape();
        const result = shape.hasJournal
          ? await listQuarantine(ctx.database.db, { runId: flags.run, includeRestored: Boolean(flags.all), limit: flags.limit })
          : { rows: [], total: 0 };
        if (flags.format === 'json') return void process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
        if (result.total === 0) return void process.stdout.write('The quarantine is empty.\n');
        // the row's user and case id in columns of their own, whole; the rest of it after them
        const table = renderTable(
          ['id', 'run', 'table', 'reason', 'user_id', 'case id', 'quarantined', 'restored', 'rest of the row'],
          result.rows.map((r) => {
            const { user_id: user, case_id: caseId, active_case_id: activeCaseId, ...rest } = r.rowData as Record<string, unknown>;
            return [
              r.quarantineId,
              r.runId,
              r.sourceTable,
              r.reason,
              visible(user ?? ''),
              visible(caseId ?? activeCaseId ?? ''),
              r.quarantinedAt,
              r.restoredAt ?? '',
              visible(JSON.stringify(rest)),
            ];
          }),
          ctx.useColor,
        );
        process.stdout.write(`${table}\nShowing ${result.rows.length} of ${result.total}.\n`);
      });
    });

  throttleOptions(quarantine.command('restore'))
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
    .action(
      async (runId: number, flags: ThrottleFlags & { dryRun?: boolean; yes?: boolean; format: 'table' | 'json' }, command: Command) => {
        const { withDatabase } = await import('../context.js');
        const { applyRestore, ExitCode, planRestore } = await import('../../core/index.js');
        const { assertCanConfirm } = await import('../prompts.js');
        const { runPlanned } = await import('../planned.js');
        const isTerminal = Boolean(process.stdin.isTTY && process.stdout.isTTY);
        if (!flags.dryRun) assertCanConfirm({ yes: Boolean(flags.yes), isTerminal, what: 'restore rows' });
        await withDatabase(command, { judgesData: true, poolSize: 3, journaled: true, writes: !flags.dryRun }, async (ctx) => {
          const shape = await ctx.shape();
          await runPlanned(
            {
              what: 'restore rows',
              plan: () => planRestore(ctx.database, shape, runId),
              preview: () => '',
              dryRunNote: (plan) => `Dry run: ${plan.waiting} row(s) run ${runId} quarantined can be restored; nothing was changed.\n`,
              question: (plan) => `Restore ${plan.waiting} row(s) quarantined by run ${runId}?`,
              apply: (plan) =>
                applyRestore(ctx.database, plan, {
                  log: ctx.log.child({ command: 'quarantine restore' }),
                  ...ctx.run,
                  throttle: throttleOf(flags),
                }),
              print: (result) =>
                `${[
                  `Restored ${result.restored} row(s) (run ${result.runId}).`,
                  ...result.outcomes.map((o) => `not restored: quarantine ${o.quarantineId} (${o.sourceTable}): ${o.reason}`),
                  ...(result.notRestored > result.outcomes.length
                    ? [`… and ${result.notRestored - result.outcomes.length} more not restored`]
                    : []),
                ].join('\n')}\n`,
              exitCode: (result) => (result.notRestored > 0 ? ExitCode.findings : ExitCode.ok),
            },
            { yes: Boolean(flags.yes), dryRun: flags.dryRun, format: flags.format, isTerminal: ctx.isTerminal },
          );
        });
      },
    );
}
