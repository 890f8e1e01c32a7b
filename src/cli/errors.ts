/**
 * The one top-level error handler: expected errors print one line without a stack; anything
 * else is an internal error, printed with its stack, exit 70.
 */
import { CommanderError } from 'commander';
import { CaseguardError, ExitCode, toError } from '../core/errors.js';
import { SqlState, describePgError, sqlStateOf } from '../core/db/sqlstate.js';

export function reportError(thrown: unknown, stderr: NodeJS.WritableStream = process.stderr): number {
  if (thrown instanceof CommanderError) {
    // commander has already printed its message (or the help text).
    // --help and --version are answers; help shown because a command is missing is a usage error.
    if (thrown.code === 'commander.helpDisplayed' || thrown.code === 'commander.version') return ExitCode.ok;
    return thrown.exitCode === 0 ? ExitCode.ok : ExitCode.usage;
  }
  if (thrown instanceof CaseguardError) {
    stderr.write(`caseguard: ${thrown.message}\n`);
    return thrown.exitCode;
  }
  const error = toError(thrown);
  if (sqlStateOf(error) === SqlState.insufficientPrivilege) {
    stderr.write(`caseguard: the database user lacks a privilege this command needs: ${describePgError(error)}\n`);
    return ExitCode.connection;
  }
  if (sqlStateOf(error)) {
    stderr.write(`caseguard: internal error: ${describePgError(error)}\n${error.stack ?? ''}\n`);
  } else {
    stderr.write(`caseguard: internal error: ${error.stack ?? error.message}\n`);
  }
  return ExitCode.internal;
}
