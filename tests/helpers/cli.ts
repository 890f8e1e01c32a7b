/** Runs the built binary (bin/caseguard.js) and collects its exit code, stdout and stderr. */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export const BIN = fileURLToPath(new URL('../../bin/caseguard.js', import.meta.url));

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export function runCli(
  args: string[],
  options: { env?: NodeJS.ProcessEnv; input?: string; cwd?: string; timeoutMs?: number } = {},
): Promise<CliResult> {
  const env: NodeJS.ProcessEnv = { ...process.env, ...options.env };
  // Tests decide the connection explicitly; inherited settings must not leak in.
  for (const key of ['DATABASE_URL', 'PGHOST', 'PGDATABASE', 'FORCE_COLOR', 'CI'])
    if (!(options.env && key in options.env)) delete env[key];
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], { env, cwd: options.cwd, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 90_000);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
    child.stdin.end(options.input ?? '');
  });
}

/**
 * Runs the binary and sends it `signal` once its stderr satisfies `ready` (a log event saying it
 * got there), never after a fixed sleep.
 */
export function signalWhen(
  args: string[],
  ready: (stderr: string) => boolean,
  signal: NodeJS.Signals,
): Promise<{ code: number | null; stdout: string; stderr: string; signalled: boolean }> {
  const child = spawn(process.execPath, [BIN, ...args], { env: { ...process.env, CI: '' }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  let signalled = false;
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
    if (!signalled && ready(stderr)) {
      signalled = true;
      child.kill(signal);
    }
  });
  return new Promise((resolve) => child.on('close', (code) => resolve({ code, stdout, stderr, signalled })));
}

/**
 * Runs the binary with a reader that goes away after the first chunk of stdout (`| head -1`),
 * or before the first one (`at: 'start'`: every write meets a closed pipe).
 */
export function runClosingStdout(
  args: string[],
  at: 'first-chunk' | 'start' = 'first-chunk',
): Promise<{ code: number | null; stderr: string }> {
  const child = spawn(process.execPath, [BIN, ...args], { env: { ...process.env, CI: '' }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  if (at === 'start') child.stdout.destroy();
  else child.stdout.once('data', () => child.stdout.destroy());
  return new Promise((resolve) => child.on('close', (code) => resolve({ code, stderr })));
}
