/**
 * A closed stdout (`caseguard … | head -1`): a command that only reads ends quietly with 0; a
 * run that writes data finishes and journals truthfully. Never "internal error" or "SQLSTATE".
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runClosingStdout } from '../helpers/cli.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { seedDamage } from '../helpers/fixtures.js';
import { seedOrphans } from '../helpers/orphans.js';

describe('a reader that goes away', () => {
  let t: TestDatabase;
  beforeAll(async () => {
    t = await createTestDatabase();
    await seedDamage(t.pool);
    await seedOrphans(t.pool, 20_000);
  });
  afterAll(() => t?.drop());

  it.each(['csv', 'json'])('scan --all --format %s | head -1 (streamed): exit 0 once the reader is gone, quiet', async (format) => {
    const r = await runClosingStdout(['scan', '--all', '--format', format, '--database-url', t.url, '--log-level', 'warn']);
    expect(r.stderr).not.toMatch(/internal error|SQLSTATE|EPIPE|Unhandled/);
    expect(r.code).toBe(0);
  });

  it.each(['junit', 'table', 'prometheus'])(
    'scan --format %s | head -1: quiet; the gate decides unless the reader left mid-write',
    async (format) => {
      const r = await runClosingStdout(['scan', '--format', format, '--limit', '2000', '--database-url', t.url, '--log-level', 'warn']);
      expect(r.stderr).not.toMatch(/internal error|SQLSTATE|EPIPE|Unhandled/);
      expect([0, 1]).toContain(r.code);
    },
  );

  it.each(['--help', 'migrate --help', 'exporter --help'])('caseguard %s into a closed pipe: exit 0, no EPIPE stack', async (args) => {
    const r = await runClosingStdout(args.split(' '), 'start');
    expect(r.stderr).not.toMatch(/EPIPE|Unhandled|at /);
    expect(r.code).toBe(0);
  });

  it('recover --yes | head -1: the run finishes and is journaled completed', async () => {
    const r = await runClosingStdout(['recover', '--yes', '--batch-size', '1000', '--database-url', t.url, '--log-level', 'warn']);
    expect(r.stderr).not.toMatch(/internal error|SQLSTATE|EPIPE|Unhandled/);
    expect(r.code).toBe(0);
    const runs = await t.pool.query(
      "SELECT status, (counts->>'create_case')::int AS created FROM caseguard.runs WHERE command = 'recover'",
    );
    expect(runs.rows).toEqual([{ status: 'completed', created: 20_005 }]);
  });
});
