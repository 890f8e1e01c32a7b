/** caseguard recover: repair what scan found; dry run, confirmation, batches, journal, undo. */
import { InvalidArgumentError, Option, type Command } from 'commander';
import type { Progress } from '../output/progress.js';
import { examples, integer, throttleOf, throttleOptions, type ThrottleFlags } from '../options.js';

interface RecoverFlags extends ThrottleFlags {
  dryRun?: boolean;
  yes?: boolean;
  quarantine?: boolean;
  batchSize: number;
  limit: number;
  format: 'table' | 'json';
  sql: boolean;
  undo?: number;
  duplicates: 'keep-latest' | 'quarantine-all';
  caseValue: Record<string, string>;
}

/** --case-value COLUMN=VALUE, repeatable: collected by column. */
function caseValue(value: string, previous: Record<string, string>): Record<string, string> {
  const eq = value.indexOf('=');
  if (eq <= 0) throw new InvalidArgumentError('expected COLUMN=VALUE, e.g. tenant_id=acme');
  return { ...previous, [value.slice(0, eq).trim()]: value.slice(eq + 1) };
}

export function defineRecover(program: Command): void {
  throttleOptions(program.command('recover'))
    .description('repair what scan found: create missing cases, normalise spellings, quarantine what cannot be repaired')
    .option('--dry-run', 'show the exact plan (and its SQL) and change nothing')
    .option('-y, --yes', 'do not ask for confirmation (required without a terminal)')
    .option(
      '--quarantine',
      'move invalid_case_id and duplicate_progress rows (and memory or pointers whose id is no uuid) into the quarantine',
    )
    .option('--batch-size <n>', 'targets per batch; each batch is its own short transaction', integer(1, 100_000), 5000)
    .option('--limit <n>', 'samples shown per step', integer(0, 10_000), 10)
    .option('--no-sql', 'leave the SQL out of the plan')
    .option('--undo <run>', 'undo a recover run where it is safe', integer(1, Number.MAX_SAFE_INTEGER))
    .addOption(
      new Option(
        '--duplicates <policy>',
        'duplicate_progress groups (with --quarantine): keep the row the bot reads, or quarantine every row',
      )
        .choices(['keep-latest', 'quarantine-all'])
        .default('keep-latest'),
    )
    .option(
      '--case-value <column=value>',
      "a value for the application's required column of cases that has no default (repeatable)",
      caseValue,
      {},
    )
    .addOption(new Option('--format <format>', 'output format').choices(['table', 'json']).default('table'))
    .addHelpText(
      'after',
      `
Repairs: one case per missing uuid referenced from progress, memory or an active-case pointer
(id preserved, owner: the earliest referencing progress row's user, title "Intake Session
(Recovered)"); non-canonical spellings rewritten to the canonical id; with --quarantine, rows no
repair can guess at are copied into caseguard.quarantine and removed in the same transaction;
of two progress rows of one user naming one case (duplicate_progress) the one the bot reads
(the most recently updated) stays, unless --duplicates quarantine-all.
The plan names the application's rules on cases: a required column without a default blocks
the run until --case-value gives it; a row a unique index, CHECK, foreign key or trigger
rejects is journaled as rejected, the rest of its batch is repaired, and the run ends partial
(exit 1).
Every run is journaled (caseguard runs). One recover at a time: a second exits 5.
${examples(
  'caseguard recover --dry-run',
  'caseguard recover                      # shows the plan and asks',
  'caseguard recover --yes --quarantine   # in a pipeline',
  'caseguard recover --undo 12 --dry-run',
  'caseguard recover --yes --case-value tenant_id=acme',
)}`,
    )
    .action(async (flags: RecoverFlags, command: Command) => {
      const { withDatabase } = await import('../context.js');
      const { assertCanConfirm } = await import('../prompts.js');
      const isTerminal = Boolean(process.stdin.isTTY && process.stdout.isTTY);
      // Without a terminal and --yes, refuse before connecting; an undo first says whether its run exists.
      if (!flags.dryRun && flags.undo === undefined)
        assertCanConfirm({ yes: Boolean(flags.yes), isTerminal, what: 'write to the database' });
      await withDatabase(command, { judgesData: true, poolSize: 3, journaled: true, writes: !flags.dryRun }, async (ctx) => {
        const shape = await ctx.shape();
        const log = ctx.log.child({ command: flags.undo === undefined ? 'recover' : 'recover --undo' });
        const { runPlanned } = await import('../planned.js');
        let bar: Progress | undefined;
        const run = { log, ...ctx.run, throttle: throttleOf(flags), onPause: (status: string | undefined) => bar?.status(status) };
        const common = { yes: Boolean(flags.yes), dryRun: flags.dryRun, format: flags.format, isTerminal: ctx.isTerminal };
        if (flags.undo !== undefined) {
          const undone = flags.undo;
          const { planUndo, applyUndo } = await import('../../core/index.js');
          return runPlanned(
            {
              what: `undo run ${undone}`,
              plan: () => planUndo(ctx.database, shape, undone),
              preview: () => '',
              dryRunNote: (plan) => `Dry run: undoing run ${undone} is safe: ${plan.summary}. Nothing was changed.\n`,
              dryRunRefuses: true,
              question: (plan) => `Undo run ${undone}: ${plan.summary}. Proceed?`,
              apply: (plan) => applyUndo(ctx.database, shape, plan, run),
              print: (r) =>
                `Undid run ${r.undoneRun} (run ${r.runId}): ${r.casesDeleted} case(s) deleted, ${r.spellingsRestored} spelling(s) restored, ${r.rowsRestored} row(s) put back.\n`,
            },
            common,
          );
        }
        const { applyRecovery, ExitCode, planRecovery } = await import('../../core/index.js');
        const { renderPlan, renderResult } = await import('../output/recoverReport.js');
        const { progressBar } = await import('../output/progress.js');
        const settings = {
          quarantine: Boolean(flags.quarantine),
          batchSize: flags.batchSize,
          sampleLimit: flags.limit,
          duplicates: flags.duplicates,
          caseValues: flags.caseValue,
        };
        const show = (plan: Parameters<typeof renderPlan>[0]) =>
          renderPlan(plan, ctx.useColor, { showSql: flags.sql, quarantine: settings.quarantine });
        try {
          await runPlanned(
            {
              what: 'write to the database',
              // Applied at once (--yes), the run reads its own snapshot: the plan needs only what decides whether it can run.
              plan: () => planRecovery(ctx.database, shape, settings, { preview: Boolean(flags.dryRun) || !flags.yes }),
              preview: show,
              dryRunNote: () => renderResult({ status: 'dry_run' }, ctx.useColor),
              nothingToDo: (plan) => (plan.previewed && plan.total === 0 ? `${show(plan)}Nothing to recover.\n` : undefined),
              question: (plan) => `Apply this plan (${plan.total} target(s)) to ${ctx.database.name}?`,
              apply: (plan) =>
                applyRecovery(ctx.database, shape, plan, {
                  ...run,
                  onBatch: (e) => {
                    bar ??= progressBar(ctx.progress, e.total, 'targets');
                    bar.update(e.doneTotal);
                  },
                }),
              print: (result) => {
                bar?.stop();
                // What the run snapshotted, where no plan was shown before it
                const plan = result.status === 'nothing_to_do' || flags.yes ? show(result.plan) : '';
                return `${plan}${renderResult(result, ctx.useColor)}`;
              },
              exitCode: (result) => (result.status === 'partial' ? ExitCode.findings : ExitCode.ok),
            },
            common,
          );
        } finally {
          bar?.stop();
        }
      });
    });
}
