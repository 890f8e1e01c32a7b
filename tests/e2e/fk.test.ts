/** fk through the built binary: status, plan linted by squawk, add, drop, refusals. */
import { execFile } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { seedControls, seedDamage } from '../helpers/fixtures.js';

const SQUAWK = fileURLToPath(new URL('../../node_modules/.bin/squawk', import.meta.url));

async function squawk(sql: string): Promise<{ code: number; out: string }> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'caseguard-squawk-'));
  const file = path.join(dir, 'plan.sql');
  await fs.writeFile(file, sql);
  try {
    const { stdout } = await promisify(execFile)(SQUAWK, ['--pg-version', '13.0', file], { env: { ...process.env, NO_COLOR: '1' } });
    return { code: 0, out: stdout };
  } catch (error) {
    const e = error as { code?: number; stdout?: string; stderr?: string };
    return { code: e.code ?? 1, out: `${e.stdout ?? ''}${e.stderr ?? ''}` };
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
}

describe('caseguard fk', () => {
  let t: TestDatabase;
  beforeEach(async () => {
    t = await createTestDatabase();
  });
  afterEach(() => t?.drop());
  const cli = (...args: string[]) => runCli([...args, '--database-url', t.url]);

  it.each(['online', 'rewrite'])('the %s plan passes squawk (suppressions named with their reasons)', async (strategy) => {
    await seedControls(t.pool);
    const plan = await cli('fk', 'plan', '--strategy', strategy);
    expect(plan.code).toBe(0);
    expect(plan.stdout).toMatch(/lock: /);
    const lint = await squawk(plan.stdout);
    expect(lint.out).toMatch(/Found 0 issues/);
    expect(lint.code).toBe(0);
    for (const ignore of plan.stdout.match(/-- squawk-ignore .+/g) ?? []) {
      const index = plan.stdout.indexOf(ignore);
      expect(plan.stdout.slice(0, index).split('\n').at(-2)).toMatch(/^-- on purpose: /);
    }
  });

  it('status names the blockers; add refuses with exit 1 naming recover; after recover it adds; drop rolls back', async () => {
    await seedDamage(t.pool);
    const status = JSON.parse((await cli('fk', 'status', '--format', 'json')).stdout);
    expect(status.blockers).toEqual({ orphaned_progress: 3, invalid_case_id: 4, duplicate_progress: 2 });
    const refused = await cli('fk', 'add', '--yes');
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/caseguard recover/);
    expect((await cli('recover', '--yes', '--quarantine')).code).toBe(0);
    const added = await cli('fk', 'add', '--yes');
    expect(added.code, added.stderr).toBe(0);
    expect(added.stdout).toMatch(/done {4}validate_fk/);
    const after = JSON.parse((await cli('fk', 'status', '--format', 'json')).stdout);
    expect(after.complete).toBe(true);
    expect(after.state.columnType).toBe('uuid');
    expect((await cli('scan')).code).toBe(0);
    const dropped = await cli('fk', 'drop', '--yes', '--revert-type');
    expect(dropped.code).toBe(0);
    expect(dropped.stdout).toMatch(/Dropped fk_case_intake_progress_case; case_id is text again/);
  });

  it('add without a terminal and without --yes refuses with exit 2', async () => {
    const r = await cli('fk', 'add');
    expect(r.code).toBe(2);
  });

  it('exits 5 when a lock cannot be had within the retries', async () => {
    await seedControls(t.pool);
    const holder = await t.pool.connect();
    try {
      await holder.query('BEGIN');
      await holder.query('LOCK TABLE mega_agent.case_intake_progress IN ACCESS SHARE MODE');
      const r = await cli('fk', 'add', '--yes', '--lock-timeout', '100ms', '--retries', '1');
      expect(r.code).toBe(5);
      expect(r.stderr).toMatch(/could not get its lock.*rerun caseguard fk add/);
    } finally {
      await holder.query('ROLLBACK');
      holder.release();
    }
  });
});
