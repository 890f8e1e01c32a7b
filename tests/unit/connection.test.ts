import path from 'node:path';
import { describe, expect, it } from 'vitest';
import fs from 'node:fs';
import os from 'node:os';
import { describeTarget, resolveConnection } from '../../src/core/db/connection.js';
import { describeParams, hostsOf, parseConnectionString, resolveParams, toClientConfig } from '../../src/core/db/connectionString.js';
import { UsageError } from '../../src/core/errors.js';

const base = { judgesData: true, cwd: '/work/app' };

describe('connection resolution', () => {
  it('prefers --database-url over DATABASE_URL and PG*', () => {
    const target = resolveConnection({ ...base, databaseUrl: 'postgres://a/b', env: { DATABASE_URL: 'postgres://c/d', PGHOST: 'h' } });
    // The string's own keywords win; the PG* variables fill only what it leaves out.
    expect(target).toEqual({ kind: 'server', params: { host: 'a', dbname: 'b' }, source: '--database-url' });
  });

  it('uses DATABASE_URL before the PG* variables', () => {
    expect(resolveConnection({ ...base, env: { DATABASE_URL: 'postgres://c/d', PGHOST: 'h' } })).toMatchObject({
      kind: 'server',
      params: { host: 'c', dbname: 'd' },
      source: 'DATABASE_URL',
    });
  });

  it('uses the PG* variables only where PGHOST, PGDATABASE or PGSERVICE is set', () => {
    expect(resolveConnection({ ...base, env: { PGDATABASE: 'intake' } })).toMatchObject({
      kind: 'server',
      source: 'PG* environment',
      params: { dbname: 'intake' },
    });
    expect(resolveConnection({ ...base, env: { PGHOST: 'db' } }).kind).toBe('server');
    expect(resolveConnection({ ...base, env: { PGUSER: 'someone' } }).kind).toBe('embedded');
  });

  it('falls back to the embedded database in ./.caseguard, or --data-dir', () => {
    expect(resolveConnection({ ...base, env: {} })).toEqual({
      kind: 'embedded',
      dataDir: path.resolve('/work/app/.caseguard'),
      source: 'embedded',
    });
    expect(resolveConnection({ ...base, dataDir: '/tmp/x', env: {} })).toMatchObject({ kind: 'embedded', dataDir: '/tmp/x' });
  });

  it('finds the nearest .caseguard in the current folder or its parents; --data-dir and CASEGUARD_DATA_DIR override', () => {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), 'cg-find-'));
    fs.mkdirSync(path.join(root, '.caseguard'));
    fs.mkdirSync(path.join(root, 'a', 'b'), { recursive: true });
    expect(resolveConnection({ ...base, cwd: path.join(root, 'a', 'b'), env: {} })).toMatchObject({
      kind: 'embedded',
      dataDir: path.join(root, '.caseguard'),
    });
    expect(resolveConnection({ ...base, cwd: path.join(root, 'a'), dataDir: 'mine', env: {} })).toMatchObject({
      dataDir: path.join(root, 'a', 'mine'),
    });
    expect(resolveConnection({ ...base, cwd: path.join(root, 'a'), env: { CASEGUARD_DATA_DIR: '/srv/cg' } })).toMatchObject({
      dataDir: '/srv/cg',
    });
  });

  it('refuses to fall back silently with CI=true for a command that judges data', () => {
    expect(() => resolveConnection({ ...base, env: { CI: 'true' } })).toThrow(UsageError);
    expect(() => resolveConnection({ ...base, env: { CI: 'true' } })).toThrow(/--embedded/);
    expect(resolveConnection({ ...base, embedded: true, env: { CI: 'true' } }).kind).toBe('embedded');
    expect(resolveConnection({ ...base, judgesData: false, env: { CI: 'true' } }).kind).toBe('embedded');
    expect(resolveConnection({ ...base, env: { CI: 'false' } }).kind).toBe('embedded');
  });

  it('rejects --embedded together with --database-url, and an empty URL', () => {
    expect(() => resolveConnection({ ...base, embedded: true, databaseUrl: 'postgres://a/b', env: {} })).toThrow(/contradict/);
    expect(() => resolveConnection({ ...base, databaseUrl: ' ', env: {} })).toThrow(/empty/);
  });
});

describe('connection strings', () => {
  it('reads URLs, with percent-encoding, query keywords and a socket folder', () => {
    expect(parseConnectionString('postgresql://ops:s3cr%40t@db.internal:6432/intake?sslmode=require&connect_timeout=5')).toEqual({
      host: 'db.internal',
      port: '6432',
      dbname: 'intake',
      user: 'ops',
      password: 's3cr@t',
      sslmode: 'require',
      connect_timeout: '5',
    });
    expect(parseConnectionString('postgres://%2Fvar%2Frun%2Fpostgresql/app')).toMatchObject({ host: '/var/run/postgresql', dbname: 'app' });
    expect(parseConnectionString('postgres:///app?host=/tmp')).toMatchObject({ host: '/tmp', dbname: 'app' });
  });

  it('reads libpq key/value strings, quoted values included', () => {
    expect(parseConnectionString("host=127.0.0.1 dbname=app user=ops password='p w\\'x'")).toEqual({
      host: '127.0.0.1',
      dbname: 'app',
      user: 'ops',
      password: "p w'x",
    });
    expect(parseConnectionString('host = db  port=5433')).toEqual({ host: 'db', port: '5433' });
  });

  it('refuses what is neither and unknown keywords, before any network call', () => {
    expect(() => parseConnectionString('not-a-url')).toThrow(UsageError);
    expect(() => parseConnectionString('not-a-url')).toThrow(/neither a postgres:\/\/ URL nor libpq key=value/);
    expect(() => parseConnectionString('host=db colour=blue')).toThrow(/unknown connection parameter "colour"/);
    expect(() => parseConnectionString("host='db")).toThrow(/unterminated/);
    expect(() => resolveParams('host=db sslmode=sometimes', {})).toThrow(/sslmode/);
  });

  it('reads host lists as libpq does: a URL, key/value pairs, the PG* variables; ports one for all or one per host', () => {
    expect(parseConnectionString('postgres://ops:s3cret@h1:5432,h2:5433/intake?target_session_attrs=read-write')).toEqual({
      host: 'h1,h2',
      port: '5432,5433',
      dbname: 'intake',
      user: 'ops',
      password: 's3cret',
      target_session_attrs: 'read-write',
    });
    expect(hostsOf(parseConnectionString('postgres://h1,h2:6000,[::1]:7000/db'))).toEqual([
      { host: 'h1', port: 5432 },
      { host: 'h2', port: 6000 },
      { host: '::1', port: 7000 },
    ]);
    expect(hostsOf(resolveParams('host=a,b port=5432,5433', {}))).toEqual([
      { host: 'a', port: 5432 },
      { host: 'b', port: 5433 },
    ]);
    expect(hostsOf(resolveParams(undefined, { PGHOST: 'a,b,c', PGPORT: '6432' })).map((h) => `${h.host}:${h.port}`)).toEqual([
      'a:6432',
      'b:6432',
      'c:6432',
    ]);
    expect(() => resolveParams('host=a,b,c port=1,2', {})).toThrow(/3 host\(s\) but 2 ports/);
    expect(() => resolveParams('host=a,b target_session_attrs=writable', {})).toThrow(
      /target_session_attrs "writable" is not one of any, read-write, read-only, primary, standby, prefer-standby/,
    );
    expect(() => resolveParams('host=a load_balance_hosts=sometimes', {})).toThrow(/load_balance_hosts "sometimes"/);
    expect(() => resolveParams('host=a keepalives_idle=soon', {})).toThrow(/keepalives_idle "soon" is not a whole number/);
    for (const attrs of ['any', 'read-write', 'read-only', 'primary', 'standby', 'prefer-standby']) {
      expect(resolveParams(`host=a,b target_session_attrs=${attrs} load_balance_hosts=random`, {}).target_session_attrs).toBe(attrs);
    }
    // the password never leaves in a name, whatever the list
    expect(describeParams(parseConnectionString('postgres://ops:s3cret@h1,h2:5433/intake'))).toBe('postgres://ops@h1:5432,h2:5433/intake');
  });

  it('keepalives are on by default, with a short idle time; keepalives=0 turns them off', () => {
    expect(toClientConfig(resolveParams('host=db', {}))).toMatchObject({ keepAlive: true, keepAliveInitialDelayMillis: 10_000 });
    expect(toClientConfig(resolveParams('host=db keepalives_idle=3', {}))).toMatchObject({
      keepAlive: true,
      keepAliveInitialDelayMillis: 3000,
    });
    expect(toClientConfig(resolveParams('host=db keepalives=0', {}))).toMatchObject({ keepAlive: false });
  });

  it('takes the string first, then its service, then the PG* variables', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cg-svc-'));
    fs.writeFileSync(
      path.join(dir, 'pg_service.conf'),
      '# services\n[intake]\nhost=svc-host\nport=6543\ndbname=svc-db\n\n[other]\nhost=x\n',
    );
    const env = { PGSERVICEFILE: path.join(dir, 'pg_service.conf'), PGUSER: 'env-user', PGHOST: 'env-host' };
    expect(resolveParams('service=intake dbname=mine', env)).toEqual({ host: 'svc-host', port: '6543', dbname: 'mine', user: 'env-user' });
    expect(resolveParams(undefined, { ...env, PGSERVICE: 'intake' })).toMatchObject({ host: 'svc-host', dbname: 'svc-db' });
    expect(() => resolveParams('service=missing', env)).toThrow(/service "missing" is not defined/);
    expect(resolveConnection({ ...base, env: { ...env, PGSERVICE: 'intake' } })).toMatchObject({
      kind: 'server',
      params: { host: 'svc-host' },
    });
  });

  it('gives sslmode its libpq meaning', () => {
    expect(toClientConfig(resolveParams('host=db sslmode=disable', {})).ssl).toBe(false);
    expect(toClientConfig(resolveParams('host=db sslmode=require', {})).ssl).toEqual({ rejectUnauthorized: false });
    expect(toClientConfig(resolveParams('host=db sslmode=verify-full', {})).ssl).toEqual({});
    expect(() => toClientConfig(resolveParams('host=db sslmode=verify-ca', {}))).toThrow(/sslrootcert/);
    expect(() => toClientConfig(resolveParams('host=db sslmode=require sslrootcert=/nonexistent/ca.pem', {}))).toThrow(
      /cannot read sslrootcert/,
    );
    expect(toClientConfig(resolveParams('host=db', { PGSSLMODE: 'disable' })).ssl).toBe(false);
  });

  it('reads the password from .pgpass (mode 0600) when none is given', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cg-pgpass-'));
    const file = path.join(dir, 'pgpass');
    fs.writeFileSync(file, 'other:5432:*:ops:wrong\ndb:5433:app:ops:from-file\n', { mode: 0o600 });
    const config = toClientConfig(resolveParams('host=db port=5433 dbname=app user=ops', { PGPASSFILE: file }), { PGPASSFILE: file });
    expect(typeof config.password).toBe('function');
    expect(await (config.password as () => Promise<string>)()).toBe('from-file');
    const explicit = toClientConfig(resolveParams('host=db user=ops password=given', {}), {});
    expect(explicit.password).toBe('given');
  });
});

describe('redaction', () => {
  it('names the target from every form, never the password', () => {
    const forms = [
      'postgresql://u:pw-secret@h/db',
      'host=h dbname=db user=u password=pw-secret',
      "host=h dbname=db user=u password='pw-secret'",
      'postgres://u@h/db?password=pw-secret',
    ];
    for (const form of forms) {
      const text = describeTarget(resolveConnection({ ...base, databaseUrl: form, env: {} }), {});
      expect(text).toBe('postgres://u@h:5432/db (from --database-url)');
      expect(text).not.toContain('pw-secret');
    }
    const fromEnv = describeTarget(
      resolveConnection({ ...base, env: { PGHOST: 'h', PGDATABASE: 'd', PGUSER: 'u', PGPASSWORD: 'secret' } }),
      {},
    );
    expect(fromEnv).toBe('postgres://u@h:5432/d (from PG* environment)');
  });
});
