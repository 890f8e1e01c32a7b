/**
 * The one place caseguard asks a question. On a terminal it asks (@inquirer/prompts); without
 * one it refuses unless --yes was given, so nothing is ever written unconfirmed.
 */
import { UsageError } from '../core/errors.js';

export interface ConfirmOptions {
  yes: boolean;
  isTerminal: boolean;
  /** What the command would do; shown in the refusal without a terminal. */
  what: string;
}

/** Fails before anything is read or written when confirmation will be impossible. */
export function assertCanConfirm(options: ConfirmOptions): void {
  if (!options.yes && !options.isTerminal) {
    throw new UsageError(`refusing to ${options.what} without confirmation: no terminal to ask on; pass --yes to proceed (or --dry-run to see the plan)`);
  }
}

export async function confirmWrite(message: string, options: ConfirmOptions): Promise<boolean> {
  if (options.yes) return true;
  assertCanConfirm(options);
  const { confirm } = await import('@inquirer/prompts');
  return confirm({ message, default: false });
}
