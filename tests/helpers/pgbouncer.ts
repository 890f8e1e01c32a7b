/**
 * A real PgBouncer (Debian package pgbouncer; .ci/run installs it) in front of the test server,
 * in a temporary folder of its own, for one test file. Ready when it accepts a query.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';

export interface PgBouncer {
  /** The URL of a database through the pooler (same user and password as the server's). */
  urlFor(database: string): string;
  stop(): Promise<void>;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
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
  const child: ChildProcess = spawn('pgbouncer', [...(asRoot ? ['-u', 'postgres'] : []), path.join(dir, 'pgbouncer.ini')], { stdio: 'ignore' });
  let exited = false;
  child.on('exit', () => (exited = true));
  const urlFor = (database: string) => `postgres://${encodeURIComponent(user)}@127.0.0.1:${port}/${database}`;
  for (let i = 0; ; i++) {
    if (exited) throw new Error(`pgbouncer exited at start: ${await fs.readFile(path.join(dir, 'pgbouncer.log'), 'utf8').catch(() => '')}`);
    const client = new pg.Client({ connectionString: urlFor('postgres') });
    client.on('error', () => undefined);
    try {
      await client.connect();
      await client.query('SELECT 1');
      await client.end();
      break;
    } catch {
      await client.end().catch(() => undefined);
      if (i > 200) throw new Error('pgbouncer did not accept connections within 10 s');
      await sleep(50);
    }
  }
  return {
    urlFor,
    stop: async () => {
      if (!exited) {
        const done = new Promise((resolve) => child.once('exit', resolve));
        child.kill('SIGINT');
        await done;
      }
      await fs.rm(dir, { recursive: true, force: true });
    },
  };
}
