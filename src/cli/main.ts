/**
 * The command line: global options, one module per command, and the top-level error handler.
 * Only commander is loaded up front; each command imports what it needs when it runs.
 */
import { Command, CommanderError, Option } from 'commander';
import { createRequire } from 'node:module';
import { watchStdout } from './stdout.js';
import { commanderExitCode, durationMs, waitMs } from './options.js';
import { defineBot } from './commands/bot.js';
import { defineExporter } from './commands/exporter.js';
import { defineWatch } from './commands/watch.js';
import { defineFk } from './commands/fk.js';
import { defineFunnel } from './commands/funnel.js';
import { defineMigrate } from './commands/migrate.js';
import { defineQuarantine } from './commands/quarantine.js';
import { defineRecover } from './commands/recover.js';
import { defineRuns } from './commands/runs.js';
import { defineScan } from './commands/scan.js';
import { defineSimulate } from './commands/simulate.js';

const require = createRequire(import.meta.url);
const { version } = require('../../package.json') as { version: string };

export function buildProgram(): Command {
  const program = new Command('caseguard')
    .description('Data-integrity toolkit for the intake bot database: scan, recover, add the foreign key, simulate, run the bot.')
    .version(version, '-V, --version')
    .option('--database-url <url>', 'PostgreSQL URL (else DATABASE_URL, else PG* variables, else the embedded database)')
    .option(
      '--data-dir <dir>',
      'folder of the embedded database (default: CASEGUARD_DATA_DIR, else the nearest .caseguard here or in a parent folder, else ./.caseguard)',
    )
    .option('--embedded', 'use the embedded database (required with CI=true when no database is given)')
    .addOption(
      new Option('--log-level <level>', 'log level on stderr')
        .choices(['trace', 'debug', 'info', 'warn', 'error', 'silent'])
        .default('info'),
    )
    .addOption(
      new Option('--quiet', 'only results and errors on the terminal: no info or warning lines, no progress bar (for scripts)').conflicts(
        'logLevel',
      ),
    )
    .option('--no-color', 'no colour in output (also: NO_COLOR, or no terminal)')
    .addOption(
      new Option('--lock-wait <duration>', 'how long a command that changes data waits for the run lock (then exit 5)')
        .argParser(waitMs)
        .default(5000, '5s'),
    )
    .addOption(
      new Option(
        '--shutdown-grace <duration>',
        'on SIGINT/SIGTERM, how long a run lets the batch or step in hand finish before cancelling it (a second signal cancels at once)',
      )
        .argParser(waitMs)
        .default(30_000, '30s'),
    )
    .addOption(
      new Option(
        '--network-timeout <duration>',
        "how long a run's connections may answer nothing before they count as lost (exit 3): a network that stops answering never hangs a command",
      )
        .argParser(durationMs)
        .default(60_000, '60s'),
    )
    .showHelpAfterError('(run with --help for usage)')
    // every subcommand's help lists the global options (--database-url and the rest) too
    .configureHelp({ showGlobalOptions: true })
    .exitOverride()
    .configureOutput({ writeErr: (s) => process.stderr.write(s), writeOut: (s) => process.stdout.write(s) });
  program.addHelpText(
    'after',
    `
Connection: --database-url (a postgres:// URL, libpq key=value pairs, or service=NAME), else
DATABASE_URL, else the PG* variables (PGHOST, PGDATABASE or PGSERVICE set), else the embedded
PostgreSQL in the nearest .caseguard (found like git finds .git; only migrate, simulate and bot
create one). With CI=true, commands that judge or change data need a database or
--embedded. PostgreSQL 13 to 18; through PgBouncer, and on standbys for what only reads.

Exit codes: 0 ok, 1 findings over the threshold, 2 usage error or refused (read-only server,
transaction pooler, no terminal), 3 cannot connect or lost the connection, 4 database not in
the expected shape or version, 5 busy or timed out, 70 internal error, 130 interrupted.

Examples:
  $ caseguard simulate --users 50
  $ caseguard migrate --database-url postgres://localhost/intake_dev
  $ caseguard <command> --help`,
  );
  defineMigrate(program);
  defineScan(program);
  defineRecover(program);
  defineRuns(program);
  defineQuarantine(program);
  defineFk(program);
  defineSimulate(program);
  defineBot(program);
  defineExporter(program);
  defineWatch(program);
  defineFunnel(program);
  const override = (c: Command) => {
    c.exitOverride();
    c.commands.forEach(override);
  };
  override(program);
  return program;
}

export async function run(argv: string[]): Promise<void> {
  watchStdout();
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
  } catch (error) {
    // --help, --version and a usage error commander printed need nothing more loaded
    if (error instanceof CommanderError) process.exitCode = commanderExitCode(error);
    else process.exitCode = (await import('./errors.js')).reportError(error);
  }
}
