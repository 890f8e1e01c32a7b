import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { openDatabase } from '../../src/core/db/database.js';
import { resolveConnection, serverTarget } from '../../src/core/db/connection.js';
import { ConnectionError } from '../../src/core/errors.js';
import { silentLogger } from '../../src/core/logger.js';
import { adminUrl } from '../helpers/db.js';

async function failure(url: string) {
  const error = await openDatabase(serverTarget(url), { log: silentLogger, connectTimeoutMs: 3000 }).then(
    async (db) => {
      await db.close();
      throw new Error('connected unexpectedly');
    },
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(ConnectionError);
  return (error as ConnectionError).message;
}

describe('connection failures are one line with the redacted URL', () => {
  it('refused connection', async () => {
    const message = await failure('postgres://someone:topsecret@127.0.0.1:1/intake');
    expect(message).toMatch(/connection refused/);
    expect(message).toContain('postgres://someone@127.0.0.1:1/intake');
    expect(message).not.toContain('topsecret');
    expect(message).not.toContain('\n');
  });

  it('unknown database', async () => {
    const url = new URL(adminUrl());
    url.pathname = '/no_such_database_here';
    const message = await failure(url.toString());
    expect(message).toMatch(/database does not exist/);
    if (url.password) expect(message).not.toContain(url.password);
  });

  it('unknown host', async () => {
    const message = await failure('postgres://u:pw@no-such-host.invalid:5432/db');
    expect(message).toMatch(/host not found|lookup failed/);
    expect(message).not.toContain(':pw@');
  });
});

describe('every form of connection string reaches the server', () => {
  const server = new URL(adminUrl());
  const kv = (extra = '') =>
    `host=${server.hostname} port=${server.port || 5432} dbname=postgres user=${decodeURIComponent(server.username)}${extra}`;

  async function connects(target: Parameters<typeof openDatabase>[0], env: NodeJS.ProcessEnv = {}) {
    const db = await openDatabase(target, { log: silentLogger, env, connectTimeoutMs: 5000 });
    try {
      return Number((await db.pool.query('SELECT 1 AS one')).rows[0].one);
    } finally {
      await db.close();
    }
  }

  it('a libpq key/value string, with sslmode disable and prefer (TLS where the server has it)', async () => {
    const password = server.password ? ` password='${decodeURIComponent(server.password)}'` : '';
    expect(await connects(serverTarget(kv(`${password} sslmode=disable`)))).toBe(1);
    expect(await connects(serverTarget(kv(`${password} sslmode=prefer`)))).toBe(1);
    expect(await connects(serverTarget(kv(password)))).toBe(1);
  });

  it('a service from the service file, its password from .pgpass', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cg-conn-'));
    fs.writeFileSync(path.join(dir, 'services'), `[intake]\n${kv().replace(/ /g, '\n')}\n`);
    fs.writeFileSync(
      path.join(dir, 'pgpass'),
      `${server.hostname}:${server.port || 5432}:*:${decodeURIComponent(server.username)}:${decodeURIComponent(server.password)}\n`,
      { mode: 0o600 },
    );
    const env = { PGSERVICEFILE: path.join(dir, 'services'), PGPASSFILE: path.join(dir, 'pgpass'), PGSSLMODE: 'disable' };
    const target = resolveConnection({ judgesData: true, cwd: dir, env: { ...env, PGSERVICE: 'intake' } });
    expect(target.kind).toBe('server');
    expect(await connects(target, env)).toBe(1);
    if (server.password) {
      // The same service without the password file cannot log in: the password came from .pgpass.
      const noFile = { ...env, PGPASSFILE: path.join(dir, 'none') };
      const bare = resolveConnection({ judgesData: true, cwd: dir, env: { ...noFile, PGSERVICE: 'intake' } });
      const without = await openDatabase(bare, { log: silentLogger, env: noFile }).catch((e: unknown) => e);
      expect(without).toBeInstanceOf(ConnectionError);
      expect((without as Error).message).not.toContain(decodeURIComponent(server.password));
    }
  });
});
