/** Parsers for option values; they fail with commander's InvalidArgumentError (exit 2). */
import { InvalidArgumentError, Option, type Command, type CommanderError } from 'commander';
import type { ThrottleSettings } from '../core/index.js';

export function integer(min: number, max: number) {
  return (value: string): number => {
    const n = Number(value);
    if (!/^-?\d+$/.test(value.trim()) || !Number.isSafeInteger(n) || n < min || n > max) {
      throw new InvalidArgumentError(`expected a whole number from ${min} to ${max}`);
    }
    return n;
  };
}

export function fraction(value: string): number {
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n) || n < 0 || n > 1) {
    throw new InvalidArgumentError('expected a number from 0 to 1');
  }
  return n;
}

/** Text for a command's help: "Examples:" after a blank line, and one line each. */
export function examples(...lines: string[]): string {
  return `\nExamples:\n${lines.map((l) => `  $ ${l}`).join('\n')}`;
}

/** A duration such as 500ms, 30s, 2min or 1h, in milliseconds. */
export function durationMs(value: string): number {
  const match = /^(\d+(?:\.\d+)?)\s*(ms|s|min|h)$/.exec(value.trim());
  if (!match) throw new InvalidArgumentError('expected a duration such as 500ms, 30s, 2min or 1h');
  const factor = { ms: 1, s: 1000, min: 60_000, h: 3_600_000 }[match[2] as 'ms' | 's' | 'min' | 'h'];
  const ms = Number(match[1]) * factor;
  if (ms <= 0) throw new InvalidArgumentError('the duration must be more than zero');
  return ms;
}

/** A wait such as 0, 500ms or 30s, in milliseconds; 0 means "do not wait". */
export function waitMs(value: string): number {
  return value.trim() === '0' ? 0 : durationMs(value);
}

/** A duration in PostgreSQL's syntax (pgDuration) in ms; a bare number is ms, as for statement_timeout. */
export function pgDurationMs(value: string): number {
  const m = /^(\d+)\s*(ms|s|min|h)?$/.exec(value.trim())!;
  return Number(m[1]) * { ms: 1, s: 1000, min: 60_000, h: 3_600_000 }[(m[2] ?? 'ms') as 'ms' | 's' | 'min' | 'h'];
}

/** A server-side timeout such as 500ms, 30s, 5min or 0 (none), kept in PostgreSQL's syntax for set_config. */
export function pgDuration(value: string): string {
  if (!/^\d+\s*(ms|s|min|h)?$/.test(value.trim()))
    throw new InvalidArgumentError('expected a duration such as 500ms, 30s, 5min or 0 (none)');
  return value.trim();
}

/**
 * The exit code of an error commander raised, once it has printed its message (or the help
 * text): --help and --version are answers; help shown because a command is missing is a usage error.
 */
export function commanderExitCode(error: CommanderError): number {
  if (error.code === 'commander.helpDisplayed' || error.code === 'commander.version') return 0;
  return error.exitCode === 0 ? 0 : 2;
}

/** A size such as 0, 512MB, 1GB or 1.5TB (binary units, like PostgreSQL's), in bytes; 0 means off. */
export function size(value: string): number {
  const match = /^(\d+(?:\.\d+)?)\s*(B|kB|KB|MB|GB|TB)?$/i.exec(value.trim());
  if (!match) throw new InvalidArgumentError('expected a size such as 0, 512MB, 1GB or 2TB');
  const unit = (match[2] ?? 'B').toUpperCase();
  const factor = { B: 1, KB: 2 ** 10, MB: 2 ** 20, GB: 2 ** 30, TB: 2 ** 40 }[unit as 'B' | 'KB' | 'MB' | 'GB' | 'TB'];
  return Math.round(Number(match[1]) * factor);
}

export interface ThrottleFlags {
  maxReplicaLag: number;
  maxSlotLag: number;
  batchPause: number;
  throttleBudget: number;
  requireHealth?: boolean;
}

/** The throttle's options, the same on every command that writes in batches (recover, --undo, quarantine restore, fk add). */
export function throttleOptions(command: Command): Command {
  return command
    .addOption(
      new Option('--max-replica-lag <duration>', "pause between batches while a standby's replay lag is over this (0: off)")
        .argParser(waitMs)
        .default(10_000, '10s'),
    )
    .addOption(
      new Option('--max-slot-lag <size>', 'pause while a replication slot retains more WAL than this (0: off)')
        .argParser(size)
        .default(2 ** 30, '1GB'),
    )
    .addOption(new Option('--batch-pause <duration>', 'a pause between any two batches').argParser(waitMs).default(0, '0'))
    .addOption(
      new Option('--throttle-budget <duration>', 'the longest continuous pause; then exit 5 with nothing half-done')
        .argParser(durationMs)
        .default(30 * 60_000, '30min'),
    )
    .option('--require-health', 'refuse to run where the health signals cannot be read (pg_monitor), instead of running unthrottled');
}

export function throttleOf(flags: ThrottleFlags): ThrottleSettings {
  return {
    maxReplicaLagMs: flags.maxReplicaLag,
    maxSlotLagBytes: flags.maxSlotLag,
    batchPauseMs: flags.batchPause,
    budgetMs: flags.throttleBudget,
    requireHealth: Boolean(flags.requireHealth),
  };
}

/** HOST:PORT, [IPv6]:PORT or :PORT (all interfaces). */
export function listenAddress(value: string): { host: string; port: number } {
  const match = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(value.trim());
  const port = Number(match?.[3]);
  if (!match || port > 65_535) throw new InvalidArgumentError('expected HOST:PORT, [IPv6]:PORT or :PORT, e.g. 127.0.0.1:9563');
  const host = match[1] ?? match[2] ?? '';
  return { host: host === '' ? '0.0.0.0' : host, port };
}
