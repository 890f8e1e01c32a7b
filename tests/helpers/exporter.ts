/**
 * The exporter as its users run it: the built binary, ready once it logs exporter.listening
 * (with the real address, so port 0 works; logged at info, so the log level is info), stopped
 * with a signal.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { BIN } from './cli.js';

export interface RunningExporter {
  url: string;
  child: ChildProcess;
  stderr(): string;
  /** Sends the signal and resolves with the exit code. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

export async function startExporterProcess(args: string[]): Promise<RunningExporter> {
  const env: NodeJS.ProcessEnv = { ...process.env, CI: '' };
  for (const key of ['DATABASE_URL', 'PGHOST', 'PGDATABASE']) delete env[key];
  const child = spawn(process.execPath, [BIN, 'exporter', '--listen', '127.0.0.1:0', ...args, '--log-level', 'info'], {
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  const url = await new Promise<string>((resolve, reject) => {
    child.stderr!.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
      const match = /"event":"exporter\.listening","url":"([^"]+)"/.exec(stderr);
      if (match) resolve(match[1]!);
    });
    void exited.then((code) => reject(new Error(`the exporter exited with ${code} before listening:\n${stderr}`)));
  });
  return {
    url,
    child,
    stderr: () => stderr,
    stop: async (signal = 'SIGTERM') => {
      child.kill(signal);
      return exited;
    },
  };
}

export async function get(url: string, init?: RequestInit): Promise<{ status: number; body: string; type: string | null }> {
  const response = await fetch(url, init);
  return { status: response.status, body: await response.text(), type: response.headers.get('content-type') };
}
