/**
 * A closed stdout (`caseguard scan | head -1`, `caseguard --help | head`) ends the output
 * quietly: further writes go nowhere (nobody waits for a drain that never comes). Help and
 * commands that only read then end at once with 0; one that writes data finishes its run, so
 * the journal stays truthful. The listener stays for the life of the process: the last write's
 * error may come after the command.
 */
const state: { readsOnly: boolean; release?: () => Promise<void> } = { readsOnly: true };
let watching = false;

export function watchStdout(): void {
  if (watching) return;
  watching = true;
  process.stdout.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code !== 'EPIPE') throw error;
    process.stdout.write = (() => true) as typeof process.stdout.write;
    if (state.readsOnly) void (state.release?.() ?? Promise.resolve()).finally(() => process.exit(0));
  });
}

/** While a command runs: whether it only reads, and what to release before exiting early. */
export function onClosedStdout(readsOnly: boolean, release: () => Promise<void>): () => void {
  watchStdout();
  state.readsOnly = readsOnly;
  state.release = release;
  return () => {
    state.readsOnly = false;
    state.release = undefined;
  };
}
