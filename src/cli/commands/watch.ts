/** caseguard watch: follow a logical replication slot and keep the checks' findings up to date. */
import { Option, type Command } from 'commander';
import { durationMs, examples, integer, listenAddress, pgDuration, size } from '../options.js';

interface WatchFlags {
  slot?: string;
  publication: string;
  listen?: { host: string; port: number };
  interval: number;
  days: number;
  abandonedAfter: number;
  maxSlotLag: number;
  statementTimeout: string;
  dropSlot?: boolean;
  dryRun?: boolean;
  yes?: boolean;
}

export function defineWatch(program: Command): void {
  program
    .command('watch')
    .description("follow a logical replication slot: log each orphan within a second of its commit, serve the checks' metrics")
    .option('--slot <name>', 'the logical replication slot to follow, made on first use (default: caseguard_watch_<database>)')
    .option('--publication <name>', "the publication on mega_agent's tables the slot reads (made on first use)", 'caseguard_watch')
    .addOption(new Option('--listen <host:port>', "serve the exporter's metrics and watch's own on /metrics").argParser(listenAddress))
    .addOption(
      new Option('--interval <duration>', 'with --listen: read the funnel and recoveries this often')
        .argParser(durationMs)
        .default(60_000, '60s'),
    )
    .option('--days <n>', 'with --listen: days of funnel and recoveries by day', integer(1, 366), 14)
    .addOption(
      new Option('--abandoned-after <duration>', 'with --listen: an intake untouched this long counts as abandoned')
        .argParser(durationMs)
        .default(86_400_000, '24h'),
    )
    .addOption(
      new Option('--max-slot-lag <size>', 'warn while the slot retains more WAL than this').argParser(size).default(2 ** 30, '1GB'),
    )
    .option('--statement-timeout <duration>', 'statement_timeout of the judgement after each commit (0: none)', pgDuration, '30s')
    .addOption(
      new Option('--drop-slot', 'drop the slot (and the publication, where watch made it), then exit').conflicts(['listen', 'dryRun']),
    )
    .option('--dry-run', 'say what would be made or followed, then exit; changes nothing')
    .option('-y, --yes', 'make the slot and publication (or drop them) without asking')
    .addHelpText(
      'after',
      `
Needs wal_level = logical (else exit 4), a role with REPLICATION (else exit 3) and the primary.
On first use it makes a publication on mega_agent's tables and a logical replication slot
(pgoutput), registered in caseguard.watch_slots; it asks first on a terminal, and needs --yes
without one. The first scan reads in the snapshot the new slot exports; from then on each commit
judges again only the rows it could have changed. A slot that exists is resumed where watch last
acknowledged it: after a scan of now, the changes since are replayed and count nothing twice.

Each row that comes to name a missing case is logged as watch.orphan_detected, and each that no
longer does as watch.orphan_resolved. A slot that is not followed keeps WAL on the server: watch
warns (watch.slot_lag) over --max-slot-lag, and --drop-slot removes it. One watch per slot
(another gets exit 5). SIGTERM or Ctrl-C stops it (exit 0); a lost connection ends it (exit 3):
start it again, it resumes.
${examples(
  'caseguard watch --yes',
  'caseguard watch --listen 127.0.0.1:9563 --max-slot-lag 512MB',
  'caseguard watch --slot intake_watch --publication intake_watch --dry-run',
  'caseguard watch --drop-slot --yes',
)}`,
    )
    .action(async (flags: WatchFlags, command: Command) => {
      const { withDatabase } = await import('../context.js');
      const core = await import('../../core/index.js');
      const { confirmWrite } = await import('../prompts.js');
      const chosen = flags.slot === undefined ? undefined : core.checkName('slot', flags.slot);
      const publication = core.checkName('publication', flags.publication);
      await withDatabase(command, { judgesData: true, graceful: true, writes: true, poolSize: 3 }, async (ctx) => {
        const ask = (what: string) => confirmWrite(`${what}?`, { yes: Boolean(flags.yes), isTerminal: ctx.isTerminal, what });
        if (flags.dropSlot) {
          core.assertWritable(ctx.database, 'caseguard watch --drop-slot');
          const plan = await core.planDropSlot(ctx.database, chosen);
          const { slot } = plan;
          if (!(await ask(`drop slot ${slot}${plan.slotExists ? '' : ' (its registration; the slot is gone)'}`))) {
            process.exitCode = 1;
            return;
          }
          const dropped = await core.dropSlot(ctx.database, slot);
          process.stdout.write(`Dropped slot ${slot}${dropped.droppedPublication ? ` and publication ${dropped.publication}` : ''}.\n`);
          return;
        }
        const setup = await core.inspectWatch(ctx.database, { slot: chosen, publication });
        const { slot } = setup;
        if (flags.dryRun) {
          const lines =
            setup.creates.length > 0
              ? setup.creates.map((c) => `would make ${c}`)
              : [`would follow slot ${slot} (publication ${publication})`];
          process.stdout.write(`${lines.join('\n')}\nDry run: nothing was changed.\n`);
          return;
        }
        if (setup.creates.length > 0 && !(await ask(`make ${setup.creates.join(' and ')}`))) {
          process.exitCode = 1;
          return;
        }
        const { createWatchMetrics } = await import('../../exporter/watchMetrics.js');
        let metrics: ReturnType<typeof createWatchMetrics> | undefined;
        const watcher = await core.startWatch(ctx.database, setup, {
          log: ctx.log,
          signal: ctx.signal,
          maxSlotLagBytes: flags.maxSlotLag,
          networkTimeoutMs: ctx.run.networkTimeoutMs,
          statementTimeout: flags.statementTimeout,
          onApplied: (a) => metrics?.applied(a),
          onLag: (l) => metrics?.lag(l),
        });
        const s = watcher.started;
        ctx.log.info(
          {
            event: 'watch.started',
            slot,
            created: s.created,
            from: s.from,
            start_lsn: s.startLsn,
            findings: s.findings,
            missing_cases: s.missingCases,
          },
          `following slot ${slot} from ${s.startLsn}: ${s.findings} finding(s), ${s.missingCases} missing case(s)`,
        );
        const exporter = flags.listen
          ? await (
              await import('../../exporter/server.js')
            ).startExporter({
              host: flags.listen.host,
              port: flags.listen.port,
              refresh: { intervalMs: flags.interval },
              log: ctx.log,
              extend: (registry) => (metrics = createWatchMetrics(registry)),
              checks: () => watcher.report(ctx.database.name),
              read: () =>
                core.readSnapshot(ctx.database.db, {
                  databaseName: ctx.database.name,
                  days: flags.days,
                  abandonedAfterMs: flags.abandonedAfter,
                  statementTimeout: flags.statementTimeout,
                  checks: () => watcher.report(ctx.database.name),
                }),
            })
          : undefined;
        if (exporter) ctx.log.info({ event: 'exporter.listening', url: exporter.url }, `serving ${exporter.url}/metrics`);
        try {
          const end = await watcher.done;
          ctx.log.info(
            { event: 'watch.stopped', commits: end.commits, changes: end.changes, detected: end.detected, resolved: end.resolved },
            `watch stopped after ${end.commits} commit(s): ${end.detected} orphan(s) detected, ${end.resolved} resolved`,
          );
        } finally {
          await exporter?.close();
        }
      });
    });
}
