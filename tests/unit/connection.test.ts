import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { describeTarget, redactUrl, resolveConnection } from '../../src/core/db/connection.js';
import { UsageError } from '../../src/core/errors.js';

const base = { judgesData: true, cwd: '/work/app' };

describe('connection resolution', () => {
  it('prefers --database-url over DATABASE_URL and PG*', () => {
    const target = resolveConnection({ ...base, databaseUrl: 'postgres://a/b', env: { DATABASE_URL: 'postgres://c/d', PGHOST: 'h' } });
    expect(target).toEqual({ kind: 'url', url: 'postgres://a/b', source: '--database-url' });
  });

  it('uses DATABASE_URL before the PG* variables', () => {
    expect(resolveConnection({ ...base, env: { DATABASE_URL: 'postgres://c/d', PGHOST: 'h' } })).toMatchObject({ kind: 'url', source: 'DATABASE_URL' });
  });

  it('uses the PG* variables only where PGHOST or PGDATABASE is set', () => {
    expect(resolveConnection({ ...base, env: { PGDATABASE: 'intake' } }).kind).toBe('pgenv');
    expect(resolveConnection({ ...base, env: { PGHOST: 'db' } }).kind).toBe('pgenv');
    expect(resolveConnection({ ...base, env: { PGUSER: 'someone' } }).kind).toBe('embedded');
  });

  it('falls back to the embedded database in ./.caseguard, or --data-dir', () => {
    expect(resolveConnection({ ...base, env: {} })).toEqual({ kind: 'embedded', dataDir: path.resolve('/work/app/.caseguard'), source: 'embedded' });
    expect(resolveConnection({ ...base, dataDir: '/tmp/x', env: {} })).toMatchObject({ kind: 'embedded', dataDir: '/tmp/x' });
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

describe('redaction', () => {
  it('hides the password of a URL and keeps the rest', () => {
    const redacted = redactUrl('postgres://admin:s3cr%40t@db.internal:6432/intake?sslmode=require');
    expect(redacted).toBe('postgres://admin:***@db.internal:6432/intake?sslmode=require');
    expect(redacted).not.toContain('s3cr');
  });

  it('hides password query parameters and key=value passwords', () => {
    expect(redactUrl('postgres://db/intake?password=hunter2')).not.toContain('hunter2');
    expect(redactUrl("host=db dbname=intake password='p w'")).toBe('host=db dbname=intake password=***');
    expect(redactUrl('host=db password=hunter2 user=x')).not.toContain('hunter2');
  });

  it('names the target with its source and never the password', () => {
    const text = describeTarget({ kind: 'url', url: 'postgresql://u:pw@h/db', source: 'DATABASE_URL' }, {});
    expect(text).toBe('postgresql://u:***@h/db (from DATABASE_URL)');
    expect(describeTarget({ kind: 'pgenv', source: 'PG* environment' }, { PGHOST: 'h', PGDATABASE: 'd', PGPASSWORD: 'secret' })).not.toContain('secret');
  });
});
