/**
 * A real PgBouncer (Debian package pgbouncer; .ci/run installs it) in front of the test server,
 * in a temporary folder of its own, for one test file. Ready when it accepts a query.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { freePort, waitForServer } from './server.js';

export interface PgBouncer {
  /** The URL of a database through the pooler (same user and password as the server's). */
  urlFor(database: string): string;
  stop(): Promise<void>;
}

export async function startPgBouncer(serverUrl: string, poolMode: 'session' | 'transaction'): Promise<PgBouncer> {
  const server = new URL(serverUrl);
  const user = decodeURIComponent(server.username || 'postgres');
  const password = decodeURIComponent(server.password);
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'caseguard-pgbouncer-'));
  await fs.chmod(dir, 0o777);
  const port = await freePort();
  // Only what a test needs differs from PgBouncer's defaults: where it listens, where the server
  // is, the pool mode, and trust for clients on loopback (the server still checks the password).
  const ini = [
    '[databases]',
    `* = host=${server.hostname} port=${server.port || 5432} user=${user}${password ? ` password=${password}` : ''}`,
    '[pgbouncer]',
    'listen_addr = 127.0.0.1',
    `listen_port = ${port}`,
    'unix_socket_dir =',
    'auth_type = trust',
    `auth_file = ${path.join(dir, 'userlist.txt')}`,
    `pool_mode = ${poolMode}`,
    'default_pool_size = 5',
    `logfile = ${path.join(dir, 'pgbouncer.log')}`,
    `pidfile = ${path.join(dir, 'pgbouncer.pid')}`,
  ].join('\n');
  await fs.writeFile(path.join(dir, 'pgbouncer.ini'), `${ini}\n`);
  await fs.writeFile(path.join(dir, 'userlist.txt'), `"${user}" "${password}"\n`);
  const asRoot = process.getuid?.() === 0;
  const child: ChildProcess = spawn('pgbouncer', [...(asRoot ? ['-u', 'postgres'] : []), path.join(dir, 'pgbouncer.ini')], {
    stdio: 'ignore',
  });
  const urlFor = (database: string) => `postgres://${encodeURIComponent(user)}@127.0.0.1:${port}/${database}`;
  await waitForServer(urlFor('postgres'), child).catch(async (error: unknown) => {
    throw new Error(
      `pgbouncer did not start: ${(error as Error).message}; log: ${await fs.readFile(path.join(dir, 'pgbouncer.log'), 'utf8').catch(() => '')}`,
    );
  });
  return {
    urlFor,
    stop: async () => {
      if (child.exitCode === null) {
        const done = new Promise((resolve) => child.once('exit', resolve));
        child.kill('SIGINT');
        await done;
      }
      await fs.rm(dir, { recursive: true, force: true });
    },
  };
}
