/**
 * A progress bar on stderr when it is a terminal (NO_COLOR removes colour, not progress); a
 * no-op otherwise. Log lines written while a bar is shown go through it (printed above the
 * bar, which is redrawn below them), and the bar is cleared when it stops.
 */
import cliProgress from 'cli-progress';

export interface Progress {
  update(value: number): void;
  /** A note after the bar ("paused: replica lag 14.2s > 10s"), or none. */
  status(text: string | undefined): void;
  stop(): void;
}

let active: cliProgress.MultiBar | undefined;

/** Writes text (whole lines) to stderr, above the progress bar when one is shown. */
export function writeStderr(text: string): void {
  if (active) active.log(text);
  else process.stderr.write(text);
}

export function progressBar(enabled: boolean, total: number, unit: string): Progress {
  if (!enabled || !process.stderr.isTTY || process.env.CI)
    return { update: () => undefined, status: () => undefined, stop: () => undefined };
  const bars = new cliProgress.MultiBar(
    {
      format: `{bar} {value}/{total} ${unit} | {eta_formatted} left{status}`,
      stream: process.stderr,
      hideCursor: true,
      clearOnComplete: true,
    },
    cliProgress.Presets.shades_classic,
  );
  const bar = bars.create(total, 0, { status: '' });
  active = bars;
  let stopped = false;
  return {
    update: (v) => bar.update(v),
    status: (text) => bar.update({ status: text ? ` | ${text}` : '' }),
    stop: () => {
      if (stopped) return;
      stopped = true;
      if (active === bars) active = undefined;
      // MultiBar.stop() clears the bar without writing the log lines buffered since the last
      // redraw: one more redraw first, so no log line is lost.
      bars.update();
      bars.stop();
    },
  };
}
