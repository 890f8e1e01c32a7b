/** caseguard runs: the journal of mutating runs. */
import { Option, type Command } from 'commander';
import { examples, integer } from '../options.js';

interface RunsFlags {
  limit: number;
  format: 'table' | 'json';
}

export function defineRuns(program: Command): void {
  const runs = program
    .command('runs')
    .description('list journaled runs (recover, restore, undo, fk), or show one')
    .option('--limit <n>', 'runs to list, newest first', integer(1, 100_000), 20)
    .addOption(new Option('--format <format>', 'output format').choices(['table', 'json']).default('table'))
    .addHelpText('after', examples('caseguard runs', 'caseguard runs --limit 100 --format json', 'caseguard runs show 12'))
    .helpCommand(true)
    .action(async (flags: RunsFlags, command: Command) => {
      const { withDatabase } = await import('../context.js');
      const { listRuns } = await import('../../core/index.js');
      const { renderTable } = await import('../output/table.js');
      await withDatabase(command, { judgesData: false, poolSize: 1, readsOnly: true }, async (ctx) => {
        const shape = await ctx.shape();
        const rows = shape.hasJournal ? await listRuns(ctx.database.db, flags.limit) : [];
        if (flags.format === 'json') return void process.stdout.write(`${JSON.stringify(rows, null, 2)}\n`);
        if (rows.length === 0) return void process.stdout.write('No runs journaled yet.\n');
        process.stdout.write(
          `${renderTable(
            ['run', 'command', 'dry', 'status', 'started', 'finished', 'who', 'counts'],
            rows.map((r) => [
              r.runId,
              r.command,
              r.dryRun ? 'yes' : '',
              r.status,
              r.startedAt,
              r.finishedAt ?? '',
              `${r.osUser ?? '?'} as ${r.dbUser}`,
              Object.entries(r.counts)
                .filter(([, v]) => v)
                .map(([k, v]) => `${k}=${v}`)
                .join(' '),
            ]),
            ctx.useColor,
          )}\n`,
        );
      });
    });

  runs
    .command('show')
    .description('one run: its options, status, counts and what it did')
    .argument('<run>', 'the run id (see caseguard runs)', integer(1, Number.MAX_SAFE_INTEGER))
    .addOption(new Option('--format <format>', 'output format').choices(['table', 'json']).default('table'))
    .addHelpText('after', examples('caseguard runs show 12', 'caseguard runs show 12 --format json'))
    .action(async (runId: number, flags: { format: 'table' | 'json' }, command: Command) => {
      const { withDatabase } = await import('../context.js');
      const { getRun } = await import('../../core/index.js');
      const { UsageError } = await import('../../core/index.js');
      const { renderTable } = await import('../output/table.js');
      await withDatabase(command, { judgesData: false, poolSize: 1, readsOnly: true }, async (ctx) => {
        const shape = await ctx.shape();
        const run = shape.hasJournal ? await getRun(ctx.database.db, runId) : undefined;
        if (!run) throw new UsageError(`there is no run ${runId}; see caseguard runs`);
        if (flags.format === 'json') return void process.stdout.write(`${JSON.stringify(run, null, 2)}\n`);
        const head = renderTable(
          ['field', 'value'],
          [
            ['run', run.runId],
            ['command', run.command],
            ['dry run', run.dryRun ? 'yes' : 'no'],
            ['status', run.status],
            ['options', JSON.stringify(run.options)],
            ['database user', run.dbUser],
            ['os user', `${run.osUser ?? '?'} on ${run.host ?? '?'}`],
            ['started', run.startedAt],
            ['finished', run.finishedAt ?? ''],
            ['counts', JSON.stringify(run.counts)],
            ...(run.error ? [['error', run.error] as [string, string]] : []),
          ],
          ctx.useColor,
        );
        const items = run.items.length
          ? renderTable(
              ['action', 'table', 'check', 'rows'],
              run.items.map((i) => [i.action, i.tableName, i.checkId ?? '', i.count]),
              ctx.useColor,
            )
          : 'It changed no row.';
        process.stdout.write(`${head}\n${items}\n`);
      });
    });
}
