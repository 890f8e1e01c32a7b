/** caseguard migrate: create or upgrade the schema, for local and test databases. */
import { Option, type Command } from 'commander';
import { examples } from '../options.js';

export function defineMigrate(program: Command): void {
  program
    .command('migrate')
    .description("create or upgrade the schema (mega_agent contract tables and caseguard's own); for local and test databases")
    .addOption(
      new Option(
        '--track-deletions',
        'also record deletions of cases (two triggers on mega_agent.cases), so scan --since sees them',
      ).conflicts('untrackDeletions'),
    )
    .option('--untrack-deletions', 'remove those triggers and what they recorded')
    .addHelpText(
      'after',
      `
Applies drizzle/ migrations under caseguard's run lock, so concurrent runs are safe. Where the
application already created mega_agent, its tables are left as they are and only caseguard's
own schema (journal, quarantine) is created.

--track-deletions is the one change caseguard makes to the application's tables, and only when
asked: an AFTER DELETE statement trigger on mega_agent.cases (one insert per statement into
caseguard.case_deletions) and an AFTER UPDATE OF case_id row trigger that fires only when an id
changes. It takes a brief lock on cases (at most 5s, else exit 5). From then on scan --since
sees an orphan made by deleting its case; before, its coverage is changed-rows-only.
${examples(
  'caseguard migrate',
  'caseguard migrate --database-url postgres://localhost/intake_test',
  'caseguard migrate --track-deletions',
)}`,
    )
    .action(async (flags: { trackDeletions?: boolean; untrackDeletions?: boolean }, command: Command) => {
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
          if (flags.trackDeletions) {
            const { installDeletionTracking } = await import('../../core/index.js');
            const tracking = await installDeletionTracking(database.db);
            lines.push(
              tracking.already
                ? `Deletions of cases are tracked already (since ${tracking.since.toISOString()}).`
                : `Deletions of cases are tracked from ${tracking.since.toISOString()}: scan --since from then on sees an orphan made by deleting its case.`,
            );
          }
          if (flags.untrackDeletions) {
            const { removeDeletionTracking } = await import('../../core/index.js');
            const removed = await removeDeletionTracking(database.db);
            lines.push(
              removed.removed
                ? 'Deletion tracking removed: scan --since is changed-rows-only again.'
                : 'Deletion tracking was not installed.',
            );
          }
          process.stdout.write(`${lines.join('\n')}\n`);
        },
      );
    });
}
