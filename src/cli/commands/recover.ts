/** caseguard recover: repair what scan found; dry run, confirmation, batches, journal, undo. */
import { InvalidArgumentError, Option, type Command } from 'commander';
import { examples, integer } from '../options.js';

interface RecoverFlags {
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
  program
    .command('recover')
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
      const { assertCanConfirm, confirmWrite } = await import('../prompts.js');
      const isTerminal = Boolean(process.stdin.isTTY && process.stdout.isTTY);
      // Without a terminal and --yes, refuse before connecting; an undo first says whether its run exists.
      if (!flags.dryRun && flags.undo === undefined)
        assertCanConfirm({ yes: Boolean(flags.yes), isTerminal, what: 'write to the database' });
      await withDatabase(command, { judgesData: true, poolSize: 3, graceful: true }, async (ctx) => {
        const shape = await ctx.shape();
        const log = ctx.log.child({ command: 'recover' });
        if (flags.undo !== undefined) {
          const { undoRun } = await import('../../core/recover/undo.js');
          if (!flags.dryRun) {
            await ctx.assertCanWrite('caseguard recover --undo');
            if (!flags.yes) {
              // The safety checks run read-only first; the prompt comes before any lock or journal row.
              const preview = await undoRun(ctx.database, shape, flags.undo, { dryRun: true });
              if (
                !(await confirmWrite(`Undo run ${flags.undo}: ${preview.summary}. Proceed?`, {
                  yes: false,
                  isTerminal: ctx.isTerminal,
                  what: `undo run ${flags.undo}`,
                }))
              ) {
                process.stdout.write('Declined: nothing was changed.\n');
                process.exitCode = 1;
                return;
              }
            }
          }
          const result = await undoRun(ctx.database, shape, flags.undo, {
            dryRun: Boolean(flags.dryRun),
            signal: ctx.signal,
            lockWaitMs: ctx.lockWaitMs,
          });
          process.stdout.write(
            flags.format === 'json'
              ? `${JSON.stringify(result, null, 2)}\n`
              : result.dryRun
                ? `Dry run: undoing run ${result.undoneRun} is safe: ${result.summary}. Nothing was changed.\n`
                : `Undid run ${result.undoneRun} (run ${result.runId}): ${result.casesDeleted} case(s) deleted, ${result.spellingsRestored} spelling(s) restored, ${result.rowsRestored} row(s) put back.\n`,
          );
          return;
        }
        const { applyRecovery, planRecovery, recover } = await import('../../core/recover/recover.js');
        const { renderPlan, renderResult } = await import('../output/recoverReport.js');
        const { progressBar } = await import('../output/progress.js');
        const { ExitCode, UsageError } = await import('../../core/errors.js');
        let bar: ReturnType<typeof progressBar> | undefined;
        const showPlan = (plan: Parameters<typeof renderPlan>[0]) => {
          if (flags.format === 'table')
            process.stdout.write(renderPlan(plan, ctx.useColor, { showSql: flags.sql, quarantine: Boolean(flags.quarantine) }));
        };
        const settings = {
          quarantine: Boolean(flags.quarantine),
          batchSize: flags.batchSize,
          sampleLimit: flags.limit,
          duplicates: flags.duplicates,
          caseValues: flags.caseValue,
        };
        let confirmed: Awaited<ReturnType<typeof planRecovery>> | undefined;
        if (!flags.dryRun) {
          await ctx.assertCanWrite('caseguard recover');
          if (!flags.yes) {
            // The plan is read (writing nothing) and confirmed before any lock or journal row.
            const plan = await planRecovery(ctx.database, shape, settings);
            showPlan(plan);
            if (plan.total === 0) {
              process.stdout.write('Nothing to recover.\n');
              return;
            }
            if (plan.constraints.blockers.length > 0) {
              throw new UsageError(`recover cannot run as asked; nothing was changed: ${plan.constraints.blockers.join('; ')}`);
            }
            const ok = await confirmWrite(`Apply this plan (${plan.total} target(s)) to ${ctx.database.name}?`, {
              yes: false,
              isTerminal: ctx.isTerminal,
              what: 'write to the database',
            });
            if (!ok) {
              process.stdout.write('Declined: nothing was changed.\n');
              process.exitCode = ExitCode.findings;
              return;
            }
            confirmed = plan;
          }
        }
        try {
          const running = {
            ...settings,
            log,
            signal: ctx.signal,
            lockWaitMs: ctx.lockWaitMs,
            onBatch: (e: { total: number; doneTotal: number }) => {
              bar ??= progressBar(ctx.isTerminal, e.total, 'targets');
              bar.update(e.doneTotal);
            },
          };
          const result = confirmed
            ? await applyRecovery(ctx.database, shape, confirmed, running)
            : await recover(ctx.database, shape, { ...running, dryRun: Boolean(flags.dryRun) });
          bar?.stop();
          if (flags.format === 'json') process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
          else {
            if (result.status === 'dry_run' || result.status === 'nothing_to_do' || flags.yes) showPlan(result.plan);
            process.stdout.write(renderResult(result, ctx.useColor));
          }
          if (result.status === 'partial') process.exitCode = ExitCode.findings;
        } finally {
          bar?.stop();
        }
      });
    });
}
