/**
 * The built binary in a pseudo-terminal (util-linux `script`), for what only happens on a
 * terminal: prompts, Ctrl-C at a prompt, colour, width. Keys are written to the terminal;
 * waitFor resolves when the screen shows a pattern, never after a fixed sleep.
 */
import { spawn } from 'node:child_process';
import { stripVTControlCharacters } from 'node:util';
import { BIN } from './cli.js';

export interface PtySession {
  /** Everything the terminal showed so far (stdout and stderr share it), colour codes removed. */
  screen(): string;
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<void>;
  type(keys: string): void;
  exit: Promise<number | null>;
}

/** Without ANSI escape sequences (colour, cursor moves). */
const plain = (s: string) => stripVTControlCharacters(s);

const quote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

export function runInPty(args: string[], options: { env?: NodeJS.ProcessEnv; columns?: number } = {}): PtySession {
  const command = `stty cols ${options.columns ?? 100} rows 40; exec ${[process.execPath, BIN, ...args].map(quote).join(' ')}`;
  const env: NodeJS.ProcessEnv = { ...process.env, TERM: 'xterm', ...options.env };
  for (const key of ['DATABASE_URL', 'PGHOST', 'PGDATABASE', 'CI', 'NO_COLOR', 'FORCE_COLOR']) if (!(options.env && key in options.env)) delete env[key];
  const child = spawn('script', ['-qfec', command, '/dev/null'], { env, stdio: ['pipe', 'pipe', 'pipe'] });
  let screen = '';
  const waiters: Array<() => void> = [];
  const onData = (chunk: Buffer) => {
    screen += chunk.toString();
    for (const w of waiters.splice(0)) w();
  };
  child.stdout.on('data', onData);
  child.stderr.on('data', onData);
  const exit = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  return {
    screen: () => plain(screen),
    exit,
    type: (keys) => void child.stdin.write(keys),
    waitFor: (pattern, timeoutMs = 60_000) =>
      new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`the terminal never showed ${pattern}; it showed:\n${screen}`)), timeoutMs);
        const check = () => {
          if (pattern.test(plain(screen))) {
            clearTimeout(timer);
            resolve();
          } else waiters.push(check);
        };
        check();
        void exit.then(() => {
          if (!pattern.test(plain(screen))) {
            clearTimeout(timer);
            reject(new Error(`the command ended without showing ${pattern}; it showed:\n${screen}`));
          }
        });
      }),
  };
}
