/** A progress bar on stderr when it is a terminal (NO_COLOR removes colour, not progress); a no-op otherwise. */
import cliProgress from 'cli-progress';

export interface Progress {
  update(value: number): void;
  stop(): void;
}

export function progressBar(enabled: boolean, total: number, unit: string): Progress {
  if (!enabled || !process.stderr.isTTY || process.env.CI) return { update: () => undefined, stop: () => undefined };
  const bar = new cliProgress.SingleBar(
    { format: `{bar} {value}/{total} ${unit} | {eta_formatted} left`, stream: process.stderr, hideCursor: true, clearOnComplete: true },
    cliProgress.Presets.shades_classic,
  );
  bar.start(total, 0);
  return { update: (v) => bar.update(v), stop: () => bar.stop() };
}
