/** Commands named in the design that are not built yet: listed, and they say so when run. */
import type { Command } from 'commander';
import { UsageError } from '../../core/errors.js';

const PLANNED: Array<[string, string]> = [
  ['bot', 'run the intake bot (not built yet)'],
];

export function listPlanned(program: Command): void {
  for (const [name, description] of PLANNED) {
    if (program.commands.some((c) => c.name() === name)) continue;
    program
      .command(name)
      .description(description)
      .allowUnknownOption()
      .allowExcessArguments()
      .action(() => {
        throw new UsageError(`\`caseguard ${name}\` is not built yet in this version`);
      });
  }
}
