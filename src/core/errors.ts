/**
 * Errors that carry the process exit code the CLI maps them to. The core throws them and
 * never exits; only the CLI's top-level handler turns them into output and an exit code.
 */

/** Exit codes; a public interface documented in the README. */
export const ExitCode = {
  ok: 0,
  findings: 1,
  usage: 2,
  connection: 3,
  schema: 4,
  busy: 5,
  internal: 70,
  interrupted: 130,
} as const;
export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];

/** Base class: an expected failure whose message tells the user what to do next. */
export class CaseguardError extends Error {
  readonly exitCode: ExitCode;
  constructor(message: string, exitCode: ExitCode, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.exitCode = exitCode;
  }
}

/** Bad input, a conflicting option, or a refusal (no terminal to confirm on). Exit 2. */
export class UsageError extends CaseguardError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, ExitCode.usage, options);
  }
}

/** The database cannot be reached or refuses us. Exit 3. */
export class ConnectionError extends CaseguardError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, ExitCode.connection, options);
  }
}

/** The database is not in the shape caseguard expects. Exit 4. */
export class SchemaError extends CaseguardError {
  readonly missing: string[];
  constructor(message: string, missing: string[] = [], options?: { cause?: unknown }) {
    super(message, ExitCode.schema, options);
    this.missing = missing;
  }
}

/** Another run holds the lock, or a lock could not be had in time. Exit 5. */
export class BusyError extends CaseguardError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, ExitCode.busy, options);
  }
}

/** Findings block the change (fk add while orphans exist): run recover first. Exit 1. */
export class BlockedError extends CaseguardError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, ExitCode.findings, options);
  }
}

/** The user interrupted the command (SIGINT/SIGTERM). Exit 130. */
export class InterruptedError extends CaseguardError {
  constructor(message = 'interrupted', options?: { cause?: unknown }) {
    super(message, ExitCode.interrupted, options);
  }
}

/**
 * A broken invariant: a bug in caseguard, never a condition a user can meet. Deliberately not a
 * CaseguardError: the CLI prints it with its stack frames and exits 70.
 */
export class InternalError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'InternalError';
  }
}

/** Coerces any thrown value to an Error, keeping the original as the cause. */
export function toError(value: unknown): Error {
  if (value instanceof Error) return value;
  return new Error(typeof value === 'string' ? value : `non-error thrown: ${safeString(value)}`, {
    cause: value,
  });
}

function safeString(value: unknown): string {
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}

/**
 * Why a plan cannot be applied, found while planning (read-only): a read-only server, a
 * transaction pooler, findings that block, a shape a strategy cannot carry. The plan carries
 * them; its apply refuses with the first, with the exit code each states. A dry run shows them.
 */
export interface Blocker {
  reason: string;
  exitCode: typeof ExitCode.findings | typeof ExitCode.usage | typeof ExitCode.connection | typeof ExitCode.schema;
}

/** The error a blocker refuses with: BlockedError (1), UsageError (2), ConnectionError (3), SchemaError (4). */
export function blockerError(blocker: Blocker): CaseguardError {
  switch (blocker.exitCode) {
    case ExitCode.findings:
      return new BlockedError(blocker.reason);
    case ExitCode.connection:
      return new ConnectionError(blocker.reason);
    case ExitCode.schema:
      return new SchemaError(blocker.reason);
    default:
      return new UsageError(blocker.reason);
  }
}

/** Throws the first blocker's error; apply functions call it before anything is locked or journaled. */
export function assertUnblocked(plan: { blockers: readonly Blocker[] }): void {
  const first = plan.blockers[0];
  if (first) throw blockerError(first);
}
