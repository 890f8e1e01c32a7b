/** caseguard migrate: create or upgrade the schema, for local and test databases. */
import type { Command } from 'commander';
import { examples } from '../options.js';

export function defineMigrate(program: Command): void {
  program
    .command('migrate')
    .description("create or upgrade the schema (mega_agent contract tables and caseguard's own); for local and test databases")
    .addHelpText(
      'after',
      `
Applies drizzle/ migrations under caseguard's run lock, so concurrent runs are safe. Where the
application already created mega_agent, its tables are left as they are and only caseguard's
own schema (journal, quarantine) is created.
${examples('caseguard migrate', 'caseguard migrate --database-url postgres://localhost/intake_test')}`,
    )
    .action(async (_options, command: Command) => {
      const { withDatabase } = await import('../context.js');
      const { migrateDatabase } = await import('../../core/index.js');
      await withDatabase(
        command,
        { judgesData: true, graceful: true, createsDatabase: true, writes: true },
        async ({ database, log, signal, lockWaitMs }) => {
          const result = await migrateDatabase(database, { what: 'caseguard migrate', log, signal, waitMs: lockWaitMs });
          const applied = result.applied.contract + result.applied.journal;
          const lines = [
            applied === 0
              ? 'Schema is up to date.'
              : `Applied ${applied} migration(s): contract ${result.applied.contract}, caseguard ${result.applied.journal}.`,
          ];
          if (result.contractPresent) lines.push('mega_agent tables were already present (created by the application); left as they are.');
          process.stdout.write(`${lines.join('\n')}\n`);
        },
      );
    });
}
