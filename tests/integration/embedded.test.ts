/**
 * The embedded server: initialised on first use, shared by concurrent processes, stopped by the
 * last one out, and found again through postmaster.pid when a process died without stopping it.
 */
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDatabase } from '../../src/core/db/database.js';
import { serverTarget } from '../../src/core/db/connection.js';
import { acquireEmbedded } from '../../src/core/db/embedded.js';
import { ConnectionError, UsageError } from '../../src/core/errors.js';
import { silentLogger } from '../../src/core/logger.js';

let dir: string;
beforeAll(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'caseguard-embedded-'));
  await fs.chmod(dir, 0o755);
});
afterAll(async () => {
  const pidFile = path.join(dir, 'data', 'pgdata', 'postmaster.pid');
  if (existsSync(pidFile)) process.kill(Number(readFileSync(pidFile, 'utf8').split('\n')[0]), 'SIGINT');
  await fs.rm(dir, { recursive: true, force: true });
});

async function query(url: string, text: string) {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query(text)).rows;
  } finally {
    await client.end();
  }
}

describe('embedded PostgreSQL', () => {
  it('a data dir the server user cannot reach is refused before anything is created in it (as root)', async () => {
    // The embedded server runs as user postgres when caseguard runs as root (as here and in CI).
    expect(process.getuid?.()).toBe(0);
    const closed = await fs.mkdtemp(path.join(os.tmpdir(), 'caseguard-closed-'));
    await fs.chmod(closed, 0o700);
    try {
      const error = await acquireEmbedded(path.join(closed, 'app', '.caseguard'), silentLogger).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(UsageError);
      expect((error as Error).message).toMatch(/cannot enter .*caseguard-closed-/);
      expect(await fs.readdir(closed)).toEqual([]);
    } finally {
      await fs.rm(closed, { recursive: true, force: true });
    }
  });

  it('initialises on first use, and two concurrent users share one server that the last one stops', async () => {
    const dataDir = path.join(dir, 'data');
    const [a, b] = await Promise.all([acquireEmbedded(dataDir, silentLogger), acquireEmbedded(dataDir, silentLogger)]);
    expect(a.port).toBe(b.port);
    expect(Number(a.version)).toBeGreaterThanOrEqual(13);
    await query(a.url, 'CREATE TABLE kept (v int); INSERT INTO kept VALUES (42)');
    await a.release();
    // b still uses it: the server must still answer.
    expect(await query(b.url, 'SELECT v FROM kept')).toEqual([{ v: 42 }]);
    await b.release();
    expect(existsSync(path.join(dataDir, 'pgdata', 'postmaster.pid'))).toBe(false);
    const again = await acquireEmbedded(dataDir, silentLogger);
    expect(await query(again.url, 'SELECT v FROM kept')).toEqual([{ v: 42 }]);
    await again.release();
  });

  it('a wrong password is exit 3, "authentication failed", with the password redacted', async () => {
    const server = await acquireEmbedded(path.join(dir, 'data'), silentLogger);
    try {
      const url = new URL(server.url);
      url.password = 'not-the-password';
      const error = await openDatabase(serverTarget(url.toString()), { log: silentLogger }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(ConnectionError);
      expect((error as ConnectionError).exitCode).toBe(3);
      expect((error as Error).message).toMatch(/authentication failed/);
      expect((error as Error).message).not.toContain('not-the-password');
    } finally {
      await server.release();
    }
  });

  it('reuses a server left running by a process killed with SIGKILL', async () => {
    const dataDir = path.join(dir, 'data');
    const script = `
      import { acquireEmbedded } from ${JSON.stringify(new URL('../../dist/core/db/embedded.js', import.meta.url).pathname)};
      import { silentLogger } from ${JSON.stringify(new URL('../../dist/core/logger.js', import.meta.url).pathname)};
      const s = await acquireEmbedded(${JSON.stringify(dataDir)}, silentLogger);
      process.stdout.write(String(s.port) + '\\n');
      setInterval(() => {}, 1000);`;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    const port = await new Promise<number>((resolve, reject) => {
      child.stdout.on('data', (chunk: Buffer) => resolve(Number(chunk.toString().trim())));
      child.on('exit', (code) => reject(new Error(`child exited ${code}`)));
    });
    child.kill('SIGKILL');
    await new Promise((r) => child.on('exit', r));
    const reused = await acquireEmbedded(dataDir, silentLogger);
    expect(reused.port).toBe(port);
    expect(await query(reused.url, 'SELECT 1 AS ok')).toEqual([{ ok: 1 }]);
    await reused.release();
    expect(existsSync(path.join(dataDir, 'pgdata', 'postmaster.pid'))).toBe(false);
  });
});
