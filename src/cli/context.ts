/**
 * What every database command needs: the logger (pino on stderr: pretty on a terminal, JSON
 * lines otherwise), the resolved and opened database, and an abort signal wired to
 * SIGINT/SIGTERM. Imported by the commands when they run, never at start-up.
 */
import { Writable } from 'node:stream';
import type { Command } from 'commander';
import pino from 'pino';
import pinoPretty from 'pino-pretty';
import {
  hasEmbeddedDatabase,
  inspectDatabase,
  migrate,
  openDatabase,
  resolveConnection,
  SchemaError,
  type Database,
  type DatabaseShape,
} from '../core/index.js';
import { terminalMessage } from './logLine.js';
import { writeStderr } from './output/progress.js';
import { onClosedStdout } from './stdout.js';

export interface GlobalOptions {
  databaseUrl?: string;
  dataDir?: string;
  embedded?: boolean;
  logLevel: string;
  /** --quiet: errors only on stderr, no progress bar. */
  quiet?: boolean;
  color: boolean;
  /** --lock-wait in ms: how long a command that changes data waits for the run lock. */
  lockWait: number;
  /** --shutdown-grace in ms: how long a stopped run lets the batch or step in hand finish. */
  shutdownGrace: number;
  /** --network-timeout in ms: how long connections may answer nothing before they count as lost. */
  networkTimeout: number;
}

export interface CommandContext {
  database: Database;
  log: pino.Logger;
  /** Whether the user chose --log-level (else it is the default). */
  logLevelExplicit: boolean;
  signal: AbortSignal;
  useColor: boolean;
  isTerminal: boolean;
  /** A progress bar may be drawn: stdin and stdout are a terminal and --quiet is not given. */
  progress: boolean;
  /** How long to wait for the run lock (--lock-wait). */
  lockWaitMs: number;
  /** What an apply of a journaled run takes, but its logger: the stop signals, --lock-wait and --shutdown-grace. */
  run: { signal: AbortSignal; hardSignal: AbortSignal; lockWaitMs: number; graceMs: number; networkTimeoutMs: number };
  /**
   * Opens the same target again, its host list searched anew: for a long-running command whose
   * server went away (a failover), so it follows the new primary. The caller closes what it gets.
   */
  reopen: () => Promise<Database>;
}

export function globalOptions(command: Command): GlobalOptions {
  return command.optsWithGlobals() as GlobalOptions;
}

export function createLogger(level: string, color: boolean): pino.Logger {
  const options: pino.LoggerOptions = { level, base: { pid: process.pid }, timestamp: pino.stdTimeFunctions.isoTime };
  if (process.stderr.isTTY) {
    // pino-pretty as a synchronous stream in this thread: no worker, nothing lost at exit.
    // One line per event, written above the progress bar while one is shown.
    const pretty = pinoPretty({
      destination: new Writable({
        write(chunk: Buffer, _encoding, done) {
          writeStderr(chunk.toString());
          done();
        },
      }),
      // the fields are in the message line (terminalMessage); singleLine would drop its newline
      singleLine: false,
      sync: true,
      colorize: color && !process.env.NO_COLOR,
      ignore: 'pid,hostname',
      hideObject: true,
      messageFormat: terminalMessage,
      translateTime: 'HH:MM:ss',
    });
    return pino(options, pretty);
  }
  return pino(options, pino.destination({ fd: 2, sync: true }));
}

export function colorEnabled(opts: GlobalOptions, stream: NodeJS.WriteStream = process.stdout): boolean {
  return opts.color !== false && Boolean(stream.isTTY) && !process.env.NO_COLOR;
}

/** After a second signal, how long a run has to cancel what is in flight and journal itself before the process exits 130. */
const HARD_STOP_MS = 10_000;

/**
 * SIGINT/SIGTERM handling. A command that stops gracefully gets an AbortSignal fired by the
 * first signal (a second one exits at once with 130). Any other command is interrupted at once:
 * onHardStop releases what it holds (the embedded server) and the process exits with 130.
 */
export function interruptSignal(
  graceful: boolean,
  onHardStop: () => Promise<void>,
  journaled = false,
): { signal: AbortSignal; hardSignal: AbortSignal; dispose(): void } {
  const controller = new AbortController();
  const hard = new AbortController();
  const onSignal = () => {
    if (controller.signal.aborted) {
      if (!journaled || hard.signal.aborted) process.exit(130);
      // A run cancels what is in flight and journals itself interrupted; it is given a moment for that.
      hard.abort(new Error('interrupted again'));
      setTimeout(() => process.exit(130), HARD_STOP_MS).unref();
      return;
    }
    controller.abort(new Error('interrupted'));
    if (!graceful) {
      process.stderr.write('caseguard: interrupted\n');
      const deadline = setTimeout(() => process.exit(130), 3000);
      deadline.unref();
      void onHardStop().finally(() => process.exit(130));
    }
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  return {
    signal: controller.signal,
    hardSignal: hard.signal,
    dispose: () => {
      process.removeListener('SIGINT', onSignal);
      process.removeListener('SIGTERM', onSignal);
    },
  };
}

export interface OpenFor {
  /** The command judges or changes data: with CI=true it must not fall back to embedded. */
  judgesData: boolean;
  poolSize?: number;
  /** The command watches ctx.signal and stops cleanly (else a signal ends it at once, 130). */
  graceful?: boolean;
  /**
   * A journaled run (implies graceful): the first signal stops it at its next checkpoint (what
   * is in flight is cancelled after --shutdown-grace); a second cancels at once, and the process
   * exits 130 at most 10 s later.
   */
  journaled?: boolean;
  /** The command only reads: once its reader is gone (a closed pipe), it ends at once with 0. */
  readsOnly?: boolean;
  /** Close pooled connections idle this long (the exporter: none held between refreshes). */
  idleTimeoutMs?: number;
  /** The command may create the embedded database (migrate, simulate, bot); others need one. */
  createsDatabase?: boolean;
  /** Pipelining connections (see OpenOptions.pipeline): the intake's commands. */
  pipeline?: boolean;
  /** The command writes: a host list is searched for a read-write server (see OpenOptions.writes). */
  writes?: boolean;
}

/**
 * Opens the database for a command, names it on stderr, runs fn, and releases everything in
 * reverse order. The embedded database is migrated on first use.
 */
export async function withDatabase<T>(
  command: Command,
  openFor: OpenFor,
  fn: (ctx: CommandContext & { shape: () => Promise<DatabaseShape> }) => Promise<T>,
): Promise<T> {
  const opts = globalOptions(command);
  const log = createLogger(opts.quiet ? 'error' : opts.logLevel, opts.color);
  const target = resolveConnection({
    databaseUrl: opts.databaseUrl,
    dataDir: opts.dataDir,
    embedded: opts.embedded,
    judgesData: openFor.judgesData,
    env: process.env,
    cwd: process.cwd(),
  });
  if (target.kind === 'embedded' && !openFor.createsDatabase && !hasEmbeddedDatabase(target.dataDir)) {
    const where =
      (opts.dataDir ?? process.env.CASEGUARD_DATA_DIR) !== undefined ? target.dataDir : `.caseguard in ${process.cwd()} or its parents`;
    throw new SchemaError(
      `no embedded database found (looked for ${where}); run caseguard migrate (or simulate, or bot) to create one, or point caseguard at a server with --database-url`,
    );
  }
  const opened: { database?: Database } = {};
  const interrupt = interruptSignal(
    Boolean(openFor.graceful || openFor.journaled),
    async () => opened.database?.abandon(),
    Boolean(openFor.journaled),
  );
  const stopWatchingStdout = onClosedStdout(Boolean(openFor.readsOnly), async () => opened.database?.abandon());
  const open = () =>
    openDatabase(target, {
      log,
      poolSize: openFor.poolSize,
      idleTimeoutMs: openFor.idleTimeoutMs,
      pipeline: openFor.pipeline,
      writes: openFor.writes,
      applicationName: `caseguard ${commandPath(command)}`,
    });
  const database = await open();
  opened.database = database;
  try {
    log.info({ event: 'db.target', database: database.name }, `database: ${database.name}`);
    if (database.embedded) await migrate(database.pool);
    return await fn({
      database,
      log,
      logLevelExplicit: sourceOf(command, 'logLevel') !== 'default',
      signal: interrupt.signal,
      useColor: colorEnabled(opts),
      isTerminal: Boolean(process.stdin.isTTY && process.stdout.isTTY),
      progress: Boolean(process.stdin.isTTY && process.stdout.isTTY && !opts.quiet),
      lockWaitMs: opts.lockWait,
      run: {
        signal: interrupt.signal,
        hardSignal: interrupt.hardSignal,
        lockWaitMs: opts.lockWait,
        graceMs: opts.shutdownGrace,
        networkTimeoutMs: opts.networkTimeout,
      },
      shape: () => inspectDatabase(database.db),
      reopen: async () => {
        const again = await open();
        log.info({ event: 'db.target', database: again.name }, `database: ${again.name}`);
        return again;
      },
    });
  } finally {
    await database.close();
    interrupt.dispose();
    stopWatchingStdout();
  }
}

/** "fk add", "recover": the command's words below caseguard. */
function commandPath(command: Command): string {
  const names: string[] = [];
  for (let c: Command | null = command; c?.parent; c = c.parent) names.unshift(c.name());
  return names.join(' ');
}

/** Where an option's value came from, looking up through the parent commands. */
function sourceOf(command: Command, option: string): string | undefined {
  for (let c: Command | null = command; c; c = c.parent) {
    const source = c.getOptionValueSource(option);
    if (source !== undefined) return source;
  }
  return undefined;
}
