/**
 * The one shape of every command that changes data (recover, recover --undo, quarantine
 * restore, fk add, fk abort, fk drop): read the plan (read-only), refuse on its blockers before
 * asking anything, show it, ask on a terminal (or take --yes), apply it, print the result.
 * A dry run shows the plan and stops. Declining exits 1 and Ctrl-C at the prompt exits 130;
 * both come before any lock or journal row, so neither changes anything.
 */
import { blockerError, ExitCode, type Blocker } from '../core/index.js';
import { confirmWrite } from './prompts.js';

export interface Planned<P extends { blockers: readonly Blocker[] }, R> {
  /** What the command would do, for the refusal without a terminal: "write to the database". */
  what: string;
  plan(): Promise<P>;
  /** The plan as a dry run and the prompt show it (stdout); the JSON of a dry run is the plan itself. */
  preview(plan: P): string;
  /** The question asked on a terminal. */
  question(plan: P): string;
  /** Said instead of asking when the plan has nothing to do (then nothing is applied). */
  nothingToDo?(plan: P): string | undefined;
  /** The dry run's closing line. */
  dryRunNote?(plan: P): string;
  /**
   * Whether a dry run answers with the first blocker's refusal (an undo: "would it be safe?")
   * rather than showing the plan with its blockers (recover reads its plan on a standby too).
   */
  dryRunRefuses?: boolean;
  apply(plan: P): Promise<R>;
  print(result: R): string;
  /** The exit code of a result (partial: 1); 0 when not given. */
  exitCode?(result: R): ExitCode;
}

export interface PlannedFlags {
  yes: boolean;
  dryRun?: boolean;
  format: 'table' | 'json' | string;
  isTerminal: boolean;
  /** Text for stdout (a closed stdout ends the command quietly: see stdout.ts). */
  write?: (text: string) => void;
}

export async function runPlanned<P extends { blockers: readonly Blocker[] }, R>(
  command: Planned<P, R>,
  flags: PlannedFlags,
): Promise<void> {
  const write = flags.write ?? ((text: string) => void process.stdout.write(text));
  const json = flags.format === 'json';
  const plan = await command.plan();
  if (flags.dryRun) {
    if (command.dryRunRefuses && plan.blockers[0]) throw blockerError(plan.blockers[0]);
    write(json ? `${JSON.stringify({ dryRun: true, plan }, null, 2)}\n` : `${command.preview(plan)}${command.dryRunNote?.(plan) ?? ''}`);
    return;
  }
  // Refused before anything is asked: the answer would not matter.
  if (plan.blockers[0]) throw blockerError(plan.blockers[0]);
  const nothing = command.nothingToDo?.(plan);
  if (nothing !== undefined) {
    write(json ? `${JSON.stringify({ nothingToDo: true, plan }, null, 2)}\n` : nothing);
    return;
  }
  if (!flags.yes) {
    if (!json) write(command.preview(plan));
    if (!(await confirmWrite(command.question(plan), { yes: false, isTerminal: flags.isTerminal, what: command.what }))) {
      write('Declined: nothing was changed.\n');
      process.exitCode = ExitCode.findings;
      return;
    }
  }
  const result = await command.apply(plan);
  write(json ? `${JSON.stringify(result, null, 2)}\n` : command.print(result));
  const code = command.exitCode?.(result) ?? ExitCode.ok;
  if (code !== ExitCode.ok) process.exitCode = code;
}
