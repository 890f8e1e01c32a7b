/**
 * A real pg_auto_failover formation from Debian's packages (pg-auto-failover-cli,
 * postgresql-15-auto-failover; .ci/run installs them): a monitor and two nodes on 127.0.0.1,
 * each kept by its own `pg_autoctl run`. As root everything runs as the postgres user. The
 * formation's URL is what `pg_autoctl show uri` prints: both hosts, target_session_attrs=read-write.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { freePort, serverUser } from './server.js';

const run = promisify(execFile);
const BIN_DIR = '/usr/lib/postgresql/15/bin';

export interface NodeState {
  name: string;
  port: number;
  state: string;
}

export interface Formation {
  /** postgres://127.0.0.1:p1,127.0.0.1:p2/intake?target_session_attrs=read-write&sslmode=disable */
  url: string;
  /** The formation's URL for another database on it. */
  urlOf(database: string): string;
  /** The URL of one node alone. */
  nodeUrl(port: number, database?: string): string;
  /** The nodes as the monitor sees them. */
  state(): Promise<NodeState[]>;
  /** The port of the node that is primary now. */
  primaryPort(): Promise<number>;
  /** `pg_autoctl perform failover`: returns once the standby has been promoted. */
  failover(): Promise<void>;
  /** Waits until one node is primary and the other secondary (the old primary rejoined). */
  settled(timeoutMs?: number): Promise<void>;
  stop(): Promise<void>;
}

export async function startFormation(database = 'intake'): Promise<Formation> {
  if (!existsSync('/usr/bin/pg_autoctl') || !existsSync(path.join(BIN_DIR, 'pg_ctl'))) {
    throw new Error('pg_autoctl or PostgreSQL 15 is missing: install pg-auto-failover-cli and postgresql-15-auto-failover (.ci/run does)');
  }
  const user = serverUser();
  const root = await fs.mkdtemp(path.join(os.tmpdir(), 'caseguard-paf-'));
  if (user) await fs.chown(root, user.uid, user.gid);
  const env = {
    ...process.env,
    HOME: root,
    XDG_CONFIG_HOME: path.join(root, 'config'),
    XDG_DATA_HOME: path.join(root, 'data'),
    XDG_RUNTIME_DIR: path.join(root, 'run'),
  };
  const autoctl = (args: string[]) => run('pg_autoctl', args, { env, ...user, cwd: root, maxBuffer: 16 << 20 });
  const keepers: ChildProcess[] = [];
  const keep = (pgdata: string) => {
    const child = spawn('pg_autoctl', ['run', '--pgdata', pgdata], { env, ...user, cwd: root, stdio: 'ignore' });
    keepers.push(child);
  };
  const common = ['--hostname', '127.0.0.1', '--auth', 'trust', '--no-ssl', '--pgctl', path.join(BIN_DIR, 'pg_ctl')];
  const monitorDir = path.join(root, 'monitor');
  const ports: number[] = [];
  try {
    const monitorPort = await freePort();
    await autoctl(['create', 'monitor', '--pgdata', monitorDir, '--pgport', String(monitorPort), ...common]);
    keep(monitorDir);
    const monitor = `postgres://autoctl_node@127.0.0.1:${monitorPort}/pg_auto_failover?sslmode=disable`;
    for (const n of [1, 2]) {
      const port = await freePort();
      ports.push(port);
      const pgdata = path.join(root, `node${n}`);
      // the first node must be primary before the second is created from it
      for (let attempt = 0; ; attempt++) {
        try {
          await autoctl([
            'create',
            'postgres',
            '--pgdata',
            pgdata,
            '--pgport',
            String(port),
            ...common,
            '--monitor',
            monitor,
            '--dbname',
            database,
            '--name',
            `node${n}`,
          ]);
          break;
        } catch (error) {
          if (attempt > 20) throw error;
          await fs.rm(pgdata, { recursive: true, force: true });
          await sleep(500);
        }
      }
      keep(pgdata);
    }
    const state = async (): Promise<NodeState[]> => {
      const { stdout } = await autoctl(['show', 'state', '--pgdata', monitorDir, '--json']);
      const rows = JSON.parse(stdout) as Array<{
        nodename: string;
        nodeport: number;
        current_group_state: string;
        assigned_group_state: string;
      }>;
      // a node is in a state once it has reached the one the monitor assigned it
      return rows.map((r) => ({
        name: r.nodename,
        port: r.nodeport,
        state: r.current_group_state === r.assigned_group_state ? r.current_group_state : '',
      }));
    };
    const settled = async (timeoutMs = 90_000) => {
      const until = Date.now() + timeoutMs;
      for (;;) {
        const states = await state().catch(() => [] as NodeState[]);
        const names = states.map((s) => s.state).sort();
        if (names.length === 2 && names[0] === 'primary' && names[1] === 'secondary') return;
        if (Date.now() > until) throw new Error(`the formation did not settle: ${JSON.stringify(states)}`);
        await sleep(250);
      }
    };
    await settled(120_000);
    const hosts = ports.map((p) => `127.0.0.1:${p}`).join(',');
    return {
      url: `postgres://postgres@${hosts}/${database}?target_session_attrs=read-write&sslmode=disable`,
      urlOf: (name) => `postgres://postgres@${hosts}/${name}?target_session_attrs=read-write&sslmode=disable`,
      nodeUrl: (port, name = database) => `postgres://postgres@127.0.0.1:${port}/${name}?sslmode=disable`,
      state,
      settled,
      primaryPort: async () => {
        const primary = (await state()).find((s) => s.state === 'primary');
        if (!primary) throw new Error('no primary');
        return primary.port;
      },
      failover: async () => {
        await autoctl(['perform', 'failover', '--pgdata', monitorDir, '--wait', '60']);
      },
      stop: async () => {
        await Promise.all(
          keepers.map(
            (child) =>
              new Promise<void>((resolve) => {
                if (child.exitCode !== null || child.signalCode !== null) return resolve();
                child.once('exit', () => resolve());
                child.kill('SIGINT'); // fast shutdown of postgres, then pg_autoctl
              }),
          ),
        );
        await fs.rm(root, { recursive: true, force: true });
      },
    };
  } catch (error) {
    for (const child of keepers) child.kill('SIGINT');
    await sleep(2000);
    await fs.rm(root, { recursive: true, force: true });
    throw error;
  }
}
