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
  /** The same, as sent: escape sequences included. */
  raw(): string;
  /**
   * The lines as a terminal shows them: carriage returns, cursor moves and line clears applied
   * (a progress bar redrawn in place is one line, not a glued string), scrollback included.
   */
  lines(): string[];
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
  for (const key of ['DATABASE_URL', 'PGHOST', 'PGDATABASE', 'CI', 'NO_COLOR', 'FORCE_COLOR'])
    if (!(options.env && key in options.env)) delete env[key];
  const child = spawn('script', ['-qfec', command, '/dev/null'], { env, stdio: ['pipe', 'pipe', 'pipe'] });
  let screen = '';
  const waiters: Array<() => void> = [];
  const onData = (chunk: string) => {
    screen += chunk;
    for (const w of waiters.splice(0)) w();
  };
  // Decoded as a stream: a character split between two chunks stays one character.
  child.stdout.setEncoding('utf8').on('data', onData);
  child.stderr.setEncoding('utf8').on('data', onData);
  const exit = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  return {
    screen: () => plain(screen),
    raw: () => screen,
    lines: () => emulate(screen),
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

/** A small terminal: enough of VT100 for what cli-progress, pino-pretty and inquirer send. */
export function emulate(raw: string): string[] {
  const lines: string[][] = [[]];
  let row = 0;
  let col = 0;
  let saved = { row: 0, col: 0 };
  const line = () => (lines[row] ??= []);
  for (let i = 0; i < raw.length; i++) {
    const c = raw[i]!;
    if (c === '\u001b') {
      // eslint-disable-next-line no-control-regex -- an escape sequence is what this parses
      const csi = /^\u001b\[([?0-9;]*)([A-Za-z])/.exec(raw.slice(i, i + 16));
      if (csi) {
        const n = Number(csi[1]!.replace('?', '') || 0);
        switch (csi[2]) {
          case 'G':
            col = Math.max(0, (n || 1) - 1);
            break;
          case 'A':
            row = Math.max(0, row - (n || 1));
            break;
          case 'B':
            row += n || 1;
            break;
          case 'J':
            line().length = Math.min(line().length, col);
            lines.length = row + 1;
            break;
          case 'K':
            if (n === 2) line().length = 0;
            else line().length = Math.min(line().length, col);
            break;
        }
        i += csi[0].length - 1;
      } else if (raw[i + 1] === '7') {
        saved = { row, col };
        i++;
      } else if (raw[i + 1] === '8') {
        ({ row, col } = saved);
        i++;
      }
      continue;
    }
    if (c === '\n') {
      row++;
      col = 0;
      line();
      continue;
    }
    if (c === '\r') {
      col = 0;
      continue;
    }
    const l = line();
    while (l.length < col) l.push(' ');
    l[col++] = c;
  }
  return Array.from(lines, (l) => (l ?? []).join(''));
}
