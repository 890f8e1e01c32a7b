import { describe, expect, it } from 'vitest';
import { openDatabase } from '../../src/core/db/database.js';
import { serverTarget } from '../../src/core/db/connection.js';
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
    expect(message).toContain('postgres://someone:***@127.0.0.1:1/intake');
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
