/** caseguard fk status|plan|add|abort|drop: the foreign key, added online-safely and resumably. */
import { InvalidArgumentError, Option, type Command } from 'commander';
import type { FkTiming } from '../../core/index.js';
import { REFERENCE_IDS, type ReferenceId } from '../../core/vocabulary.js';
import { durationMs, examples, integer, pgDuration, throttleOf, throttleOptions, type ThrottleFlags } from '../options.js';

interface LockFlags {
  lockTimeout: number;
  maxLockTimeout: number;
  lockRetryBudget: number;
  retries: number;
  statementTimeout?: string;
}

interface ReferenceFlags {
  reference?: ReferenceId[];
}

/** --reference, repeatable: the references a command works on (default: every one whose table exists). */
function referenceOption(command: Command): Command {
  return command.addOption(
    new Option(
      '--reference <reference>',
      `only this reference (repeatable): ${REFERENCE_IDS.join(', ')} (default: all whose table exists)`,
    ).argParser((value: string, previous: ReferenceId[] | undefined) => {
      if (!(REFERENCE_IDS as readonly string[]).includes(value)) throw new InvalidArgumentError(`expected ${REFERENCE_IDS.join(', ')}`);
      return [...(previous ?? []), value as ReferenceId];
    }),
  );
}

interface TimingFlags extends LockFlags, ReferenceFlags {
  strategy: 'online' | 'rewrite';
  batchSize: number;
  format: 'table' | 'json';
}

/** The lock retry schedule's flags (fk add, plan, drop): short, growing lock timeouts. */
function lockOptions(command: Command): Command {
  return command
    .addOption(
      new Option('--lock-timeout <duration>', "lock_timeout of a step's first attempt; each retry's is 1.5 times longer")
        .argParser(durationMs)
        .default(100, '100ms'),
    )
    .addOption(
      new Option(
        '--max-lock-timeout <duration>',
        'the longest lock_timeout of any attempt (what a failed attempt can hold writers up); keep it below deadlock_timeout',
      )
        .argParser(durationMs)
        .default(800, '800ms'),
    )
    .addOption(
      new Option('--lock-retry-budget <duration>', 'how long one step keeps trying for its locks (then exit 5)')
        .argParser(durationMs)
        .default(300_000, '5min'),
    )
    .option('--retries <n>', 'the most retries per step', integer(0, 10_000), 99)
    .option(
      '--statement-timeout <duration>',
      'statement_timeout of every step (default: none, so VALIDATE and index builds take what they need)',
      pgDuration,
    );
}

function timingOptions(command: Command): Command {
  return lockOptions(
    referenceOption(command).addOption(
      new Option('--strategy <strategy>', 'how case_id becomes uuid').choices(['online', 'rewrite']).default('online'),
    ),
  )
    .option('--batch-size <n>', 'rows per backfill transaction (online)', integer(1, 1_000_000), 5000)
    .addOption(new Option('--format <format>', 'output format').choices(['table', 'json']).default('table'));
}

const timing = (f: LockFlags): FkTiming => ({
  lockTimeoutMs: f.lockTimeout,
  maxLockTimeoutMs: Math.max(f.lockTimeout, f.maxLockTimeout),
  retryBudgetMs: f.lockRetryBudget,
  maxAttempts: f.retries + 1,
  statementTimeout: f.statementTimeout,
});

const settings = (f: TimingFlags) => ({ strategy: f.strategy, timing: timing(f), batchSize: f.batchSize, only: f.reference });

export function defineFk(program: Command): void {
  const fk = program
    .command('fk')
    .description('the foreign key from case_intake_progress.case_id to cases.case_id: status, plan, add, abort, drop')
    .addHelpText(
      'after',
      `
fk add refuses while orphans, invalid ids or colliding spellings exist (exit 1: run caseguard
recover first). Every step is idempotent and skipped when done, so a rerun after any failure
resumes. Every lock is taken in many short attempts whose lock_timeout grows (100ms, 150ms, …
up to --max-lock-timeout, with a pause between), so a waiting step holds the application's
writers up briefly; a deadlock is retried like a timeout; after --lock-retry-budget: exit 5,
the database consistent. Tables are locked in the order the application writes them (cases,
then progress). The FK is added NOT VALID and validated in a separate transaction.
${examples(
  'caseguard fk status',
  'caseguard fk plan > fk-plan.sql',
  'caseguard fk add --yes',
  'caseguard fk add --yes --strategy rewrite      # small tables: one rewrite under ACCESS EXCLUSIVE',
  'caseguard fk drop --yes --revert-type',
)}`,
    )
    .helpCommand(true);

  referenceOption(fk.command('status'))
    .description('per reference: column type, constraint, supporting index, what depends on the column, and what blocks adding the FK')
    .addOption(new Option('--strategy <strategy>', 'the strategy whose refusals to show').choices(['online', 'rewrite']).default('online'))
    .addOption(new Option('--format <format>', 'output format').choices(['table', 'json']).default('table'))
    .addHelpText('after', examples('caseguard fk status', 'caseguard fk status --reference memory', 'caseguard fk status --format json'))
    .action(async (flags: ReferenceFlags & { format: 'table' | 'json'; strategy: 'online' | 'rewrite' }, command: Command) => {
      const { withDatabase } = await import('../context.js');
      const { fkStatus } = await import('../../core/index.js');
      const { renderFkStatus } = await import('../output/fkReport.js');
      await withDatabase(command, { judgesData: true, poolSize: 1, readsOnly: true }, async (ctx) => {
        const status = await fkStatus(ctx.database, await ctx.shape(), { strategy: flags.strategy, only: flags.reference });
        process.stdout.write(flags.format === 'json' ? `${JSON.stringify(status, null, 2)}\n` : renderFkStatus(status, ctx.useColor));
      });
    });

  timingOptions(fk.command('plan').description('the exact SQL steps, the lock each takes, and what waits meanwhile'))
    .addHelpText(
      'after',
      examples('caseguard fk plan > fk-plan.sql', 'caseguard fk plan --strategy rewrite', 'caseguard fk plan --format json'),
    )
    .action(async (flags: TimingFlags, command: Command) => {
      const { withDatabase } = await import('../context.js');
      const { ExitCode, readFkPlan, UsageError } = await import('../../core/index.js');
      await withDatabase(command, { judgesData: true, poolSize: 1, readsOnly: true }, async (ctx) => {
        await ctx.shape();
        const plan = await readFkPlan(ctx.database, settings(flags));
        if (plan.refusal && flags.format !== 'json') throw new UsageError(plan.refusal);
        process.stdout.write(flags.format === 'json' ? `${JSON.stringify(plan, null, 2)}\n` : plan.script);
        if (plan.refusal) process.exitCode = ExitCode.usage;
      });
    });

  throttleOptions(timingOptions(fk.command('add').description('add the FK, step by step, resumably')))
    .addHelpText(
      'after',
      examples(
        'caseguard fk add                      # shows the plan and asks',
        'caseguard fk add --yes --lock-timeout 500ms',
        'caseguard fk add --yes --strategy rewrite',
      ),
    )
    .option('-y, --yes', 'do not ask for confirmation (required without a terminal)')
    .action(async (flags: TimingFlags & ThrottleFlags & { yes?: boolean }, command: Command) => {
      const { assertCanConfirm } = await import('../prompts.js');
      const isTerminal = Boolean(process.stdin.isTTY && process.stdout.isTTY);
      assertCanConfirm({ yes: Boolean(flags.yes), isTerminal, what: 'change the table' });
      const { withDatabase } = await import('../context.js');
      const { runPlanned } = await import('../planned.js');
      const { applyFkAdd, planFkAdd } = await import('../../core/index.js');
      await withDatabase(command, { judgesData: true, poolSize: 3, journaled: true, writes: true }, async (ctx) => {
        const shape = await ctx.shape();
        await runPlanned(
          {
            what: 'change the table',
            plan: () => planFkAdd(ctx.database, shape, settings(flags)),
            preview: (plan) => plan.script,
            question: () => `Run these steps on ${ctx.database.name}?`,
            apply: (plan) =>
              applyFkAdd(ctx.database, plan, {
                log: ctx.log.child({ command: 'fk add' }),
                ...ctx.run,
                throttle: throttleOf(flags),
                onStep: (e) => {
                  if (flags.format === 'table') {
                    process.stdout.write(
                      `${e.status === 'done' ? 'done   ' : 'skipped'} ${e.step}${e.status === 'done' ? ` (${e.ms} ms, ${e.attempts} attempt(s))` : ''}\n`,
                    );
                  }
                },
              }),
            print: (result) =>
              `The foreign key${result.references.length === 1 ? ' is' : 's are'} in place and validated: ${result.references.join(', ')} (run ${result.runId}, ${(result.durationMs / 1000).toFixed(2)} s${result.backfilled ? `, ${result.backfilled} rows backfilled` : ''}).\n`,
          },
          { yes: Boolean(flags.yes), format: flags.format, isTerminal },
        );
      });
    });

  lockOptions(referenceOption(fk.command('abort')))
    .description('undo a partial online fk add (before its swap): the table back to its previous shape')
    .option('-y, --yes', 'do not ask for confirmation (required without a terminal)')
    .addHelpText(
      'after',
      `
Removes what an online run that stopped before its swap left behind: the sync trigger (which
rejects case_ids that are no uuid), the NOT NULL check, the shadow column with its unique
index, and the trigger function. Past the swap (case_id is uuid), fk add finishes the run and
fk drop --revert-type rolls it back.
${examples('caseguard fk status        # "partial": where the run stopped', 'caseguard fk abort --yes')}`,
    )
    .action(async (flags: LockFlags & ReferenceFlags & { yes?: boolean }, command: Command) => {
      const { assertCanConfirm } = await import('../prompts.js');
      const isTerminal = Boolean(process.stdin.isTTY && process.stdout.isTTY);
      assertCanConfirm({ yes: Boolean(flags.yes), isTerminal, what: 'undo the partial fk add' });
      const { withDatabase } = await import('../context.js');
      const { runPlanned } = await import('../planned.js');
      const { applyFkAbort, planFkAbort } = await import('../../core/index.js');
      await withDatabase(command, { judgesData: true, poolSize: 3, journaled: true, writes: true }, async (ctx) => {
        await ctx.shape();
        await runPlanned(
          {
            what: 'undo the partial fk add',
            plan: () => planFkAbort(ctx.database, { timing: timing(flags), only: flags.reference }),
            nothingToDo: (plan) => (plan.statements.length === 0 ? 'No partial fk add to abort: nothing was changed.\n' : undefined),
            preview: (plan) => `${plan.statements.map((statement) => `${statement};`).join('\n')}\n`,
            question: (plan) => `Remove ${plan.removed.join(', ')}?`,
            apply: (plan) => applyFkAbort(ctx.database, plan, { log: ctx.log, ...ctx.run }),
            print: (result) => `Removed ${result.removed.join(', ')} (run ${result.runId}); the table is back in its previous shape.\n`,
          },
          { yes: Boolean(flags.yes), format: 'table', isTerminal },
        );
      });
    });

  lockOptions(referenceOption(fk.command('drop')))
    .description('remove the constraint (rollback); --revert-type also returns the column to text')
    .option('--revert-type', 'ALTER case_id back to text (a rewrite under ACCESS EXCLUSIVE)')
    .option('-y, --yes', 'do not ask for confirmation (required without a terminal)')
    .addHelpText(
      'after',
      examples(
        'caseguard fk drop                     # asks first',
        'caseguard fk drop --yes',
        'caseguard fk drop --yes --revert-type  # case_id back to text too',
      ),
    )
    .action(async (flags: LockFlags & ReferenceFlags & { revertType?: boolean; yes?: boolean }, command: Command) => {
      const { assertCanConfirm } = await import('../prompts.js');
      const isTerminal = Boolean(process.stdin.isTTY && process.stdout.isTTY);
      assertCanConfirm({ yes: Boolean(flags.yes), isTerminal, what: 'drop the foreign key' });
      const { withDatabase } = await import('../context.js');
      const { runPlanned } = await import('../planned.js');
      const { applyFkDrop, planFkDrop } = await import('../../core/index.js');
      await withDatabase(command, { judgesData: true, poolSize: 3, journaled: true, writes: true }, async (ctx) => {
        await ctx.shape();
        await runPlanned(
          {
            what: 'drop the foreign key',
            plan: () => planFkDrop(ctx.database, { timing: timing(flags), revertType: Boolean(flags.revertType), only: flags.reference }),
            preview: () => '',
            question: () => `Drop the foreign key${flags.revertType ? ' and return case_id to text' : ''}?`,
            apply: (plan) => applyFkDrop(ctx.database, plan, { log: ctx.log, ...ctx.run }),
            print: (result) =>
              `${result.droppedConstraints.length ? `Dropped ${result.droppedConstraints.join(', ')}` : 'No foreign key to drop'}${result.revertedType.length ? `; text again: ${result.revertedType.join(', ')}` : ''} (run ${result.runId}).\n`,
          },
          { yes: Boolean(flags.yes), format: 'table', isTerminal },
        );
      });
    });
}
