/**
 * caseguard watch as its users run it: the built binary, its JSON log lines on stderr read as
 * events, ready once it logs watch.started (and exporter.listening with --listen).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { BIN } from './cli.js';

export interface WatchEvent {
  event: string;
  [field: string]: unknown;
}

export interface RunningWatch {
  child: ChildProcess;
  /** The metrics URL, with --listen. */
  url?: string;
  started: WatchEvent;
  events(name?: string): WatchEvent[];
  stderr(): string;
  /** Resolves with the first event that matches, or rejects after timeoutMs. */
  waitFor(match: (e: WatchEvent) => boolean, timeoutMs?: number): Promise<WatchEvent>;
  exited: Promise<number | null>;
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

export async function startWatchProcess(url: string, args: string[] = []): Promise<RunningWatch> {
  const env: NodeJS.ProcessEnv = { ...process.env, CI: '' };
  for (const key of ['DATABASE_URL', 'PGHOST', 'PGDATABASE']) delete env[key];
  const child = spawn(process.execPath, [BIN, 'watch', '--database-url', url, '--yes', ...args, '--log-level', 'info'], {
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  const events: WatchEvent[] = [];
  const waiters = new Set<() => void>();
  child.stderr!.on('data', (chunk: Buffer) => {
    const before = stderr.lastIndexOf('\n') + 1;
    stderr += chunk.toString();
    const complete = stderr.slice(before, stderr.lastIndexOf('\n') + 1);
    for (const line of complete.split('\n')) if (line.startsWith('{')) events.push(JSON.parse(line) as WatchEvent);
    for (const w of waiters) w();
  });
  const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  const waitFor = (match: (e: WatchEvent) => boolean, timeoutMs = 30_000) =>
    new Promise<WatchEvent>((resolve, reject) => {
      const check = () => {
        const found = events.find(match);
        if (found) {
          waiters.delete(check);
          clearTimeout(timer);
          resolve(found);
        }
      };
      const timer = setTimeout(() => {
        waiters.delete(check);
        reject(new Error(`no such event within ${timeoutMs} ms; stderr:\n${stderr}`));
      }, timeoutMs);
      waiters.add(check);
      void exited.then(() => {
        if (waiters.has(check)) {
          waiters.delete(check);
          clearTimeout(timer);
          reject(new Error(`watch exited before the event; stderr:\n${stderr}`));
        }
      });
      check();
    });
  const started = await waitFor((e) => e.event === 'watch.started', 120_000);
  const listening = args.includes('--listen') ? await waitFor((e) => e.event === 'exporter.listening') : undefined;
  return {
    child,
    url: listening?.url as string | undefined,
    started,
    events: (name) => (name ? events.filter((e) => e.event === name) : [...events]),
    stderr: () => stderr,
    waitFor,
    exited,
    stop: async (signal = 'SIGTERM') => {
      child.kill(signal);
      return exited;
    },
  };
}
