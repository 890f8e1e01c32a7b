/**
 * The one top-level error handler: expected errors (caseguard's own, and server errors a DBA
 * can meet) print one line without a stack; anything else is an internal error, printed with
 * its stack frames, exit 70. No message ever includes a query's parameter values.
 */
import { CommanderError } from 'commander';
import { CaseguardError, expectedServerError, ExitCode, safeMessage, toError, UsageError } from '../core/index.js';
import { commanderExitCode } from './options.js';

export function reportError(thrown: unknown, stderr: NodeJS.WritableStream = process.stderr): number {
  if (thrown instanceof CommanderError) return commanderExitCode(thrown);
  const expected = thrown instanceof CaseguardError ? thrown : (expectedServerError(thrown) ?? fileSystemError(thrown));
  if (expected) {
    stderr.write(`caseguard: ${expected.message}\n`);
    return expected.exitCode;
  }
  const error = toError(thrown);
  const frames = (error.stack ?? '').split('\n').filter((line) => /^\s+at /.test(line));
  stderr.write(`caseguard: internal error: ${safeMessage(error)}\n${frames.join('\n')}\n`);
  return ExitCode.internal;
}

/** A file the user named could not be written or read (an errno with a path): exit 2. */
function fileSystemError(thrown: unknown): CaseguardError | undefined {
  const e = thrown as { code?: unknown; path?: unknown; syscall?: unknown };
  if (typeof e?.code !== 'string' || typeof e.path !== 'string' || typeof e.syscall !== 'string') return undefined;
  return new UsageError(
    `cannot ${e.syscall === 'open' || e.syscall === 'rename' || e.syscall === 'write' ? 'write' : e.syscall} ${e.path}: ${e.code}`,
    { cause: thrown },
  );
}
