/**
 * The one place caseguard asks a question. On a terminal it asks (@inquirer/prompts); without
 * one it refuses unless --yes was given, so nothing is ever written unconfirmed.
 */
import { InterruptedError, UsageError } from '../core/index.js';

export interface ConfirmOptions {
  yes: boolean;
  isTerminal: boolean;
  /** What the command would do; shown in the refusal without a terminal. */
  what: string;
}

/** Fails before anything is read or written when confirmation will be impossible. */
export function assertCanConfirm(options: ConfirmOptions): void {
  if (!options.yes && !options.isTerminal) {
    throw new UsageError(
      `refusing to ${options.what} without confirmation: no terminal to ask on; pass --yes to proceed (or --dry-run to see the plan)`,
    );
  }
}

export async function confirmWrite(message: string, options: ConfirmOptions): Promise<boolean> {
  if (options.yes) return true;
  assertCanConfirm(options);
  const { confirm } = await import('@inquirer/prompts');
  try {
    return await confirm({ message, default: false });
  } catch (error) {
    // Ctrl-C at the prompt: the user stopped before anything was written.
    if ((error as Error).name === 'ExitPromptError')
      throw new InterruptedError('interrupted at the prompt; nothing was changed', { cause: error });
    throw error;
  }
}
