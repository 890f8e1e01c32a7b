/** fk through the built binary: status, plan linted by squawk, add, drop, refusals. */
import { execFile, spawn } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { tableShape } from '../helpers/fk.js';
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

/** Runs a program with input on stdin; onStderr sees the stderr so far as it grows. */
function run(
  program: string,
  args: string[],
  input: string,
  onStderr?: (stderr: string) => void,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(program, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => {
      stderr += c.toString();
      onStderr?.(stderr);
    });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(input);
  });
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
    // The script runs transactional steps inside retrying DO blocks, which squawk cannot see
    // into: their statements are linted on their own, with the suppressions the plan states.
    const json = JSON.parse((await cli('fk', 'plan', '--strategy', strategy, '--format', 'json')).stdout) as {
      steps: Array<{ mode: string; statements: string[]; suppress?: Record<string, { rule: string; reason: string }> }>;
    };
    // as the DO blocks run them: transactional steps in a transaction, under the timeouts the script sets
    const statements = json.steps.flatMap((step) => {
      const body = step.statements.map((statement, j) => {
        const suppressed = step.suppress?.[j];
        if (suppressed) expect(plan.stdout).toContain(`-- on purpose (squawk ${suppressed.rule}): ${suppressed.reason}`);
        return `${suppressed ? `-- squawk-ignore ${suppressed.rule}\n` : ''}${statement};`;
      });
      return step.mode === 'concurrent' ? body : ['BEGIN;', ...body, 'COMMIT;'];
    });
    const lintStatements = await squawk(["SET lock_timeout = '800ms';", "SET statement_timeout = '0';", ...statements].join('\n'));
    expect(lintStatements.out).toMatch(/Found 0 issues/);
  });

  it.each(['online', 'rewrite'])(
    'fk plan --strategy %s | psql -v ON_ERROR_STOP=1 reaches the same end state as fk add',
    async (strategy) => {
      const copy = await createTestDatabase();
      try {
        for (const db of [t, copy]) {
          await seedControls(db.pool);
          await db.pool.query(
            `INSERT INTO mega_agent.cases (case_id, user_id, title) SELECT ('abcdef00-0000-4000-b000-' || lpad(g::text, 12, '0'))::uuid, 'bulk-' || g, 'x' FROM generate_series(1, 2500) g;
           INSERT INTO mega_agent.case_intake_progress (user_id, case_id) SELECT user_id, case_id::text FROM mega_agent.cases WHERE user_id LIKE 'bulk-%';
           CREATE INDEX "App memory by case" ON mega_agent.case_memory (case_id, kind)`,
          );
        }
        expect((await cli('fk', 'add', '--yes', '--strategy', strategy)).code).toBe(0);
        const plan = await runCli(['fk', 'plan', '--strategy', strategy, '--batch-size', '700', '--database-url', copy.url]);
        const psql = await run('psql', ['-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', copy.url], plan.stdout);
        expect(psql.stderr).not.toMatch(/ERROR/);
        expect(psql.code).toBe(0);
        expect(await tableShape(copy.pool)).toBe(await tableShape(t.pool));
        // the same rows, each with its uuid (the fixtures' timestamps differ between the two databases)
        const ids = async (db: TestDatabase) =>
          (
            await db.pool.query(
              "SELECT md5(string_agg(user_id || '/' || case_id::text, ',' ORDER BY user_id, case_id)) AS sum FROM mega_agent.case_intake_progress",
            )
          ).rows[0].sum;
        expect(await ids(copy)).toBe(await ids(t));
        const status = JSON.parse((await runCli(['fk', 'status', '--format', 'json', '--database-url', copy.url])).stdout);
        expect(status.complete).toBe(true);
        expect(status.references.map((r: { phase: string }) => r.phase)).toEqual(['complete', 'complete', 'complete']);
        for (const table of ['mega_agent.case_memory', 'mega_agent.bot_user_context'])
          expect(await tableShape(copy.pool, table)).toBe(await tableShape(t.pool, table));
      } finally {
        await copy.drop();
      }
    },
  );

  it('the psql script retries a lock the application holds, then goes on', async () => {
    await seedControls(t.pool);
    const plan = await cli('fk', 'plan');
    const holder = await t.pool.connect();
    try {
      await holder.query('BEGIN');
      await holder.query('LOCK TABLE mega_agent.case_intake_progress IN ACCESS SHARE MODE');
      const psql = run('psql', ['-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', t.url], plan.stdout, (stderr) => {
        // once it has retried, the application's transaction ends
        if (/step 1 progress\.add_shadow_column: no lock within \d+ ms \(attempt 2\); retrying/.test(stderr)) void holder.query('ROLLBACK');
      });
      const result = await psql;
      expect(result.code).toBe(0);
      expect(result.stderr).toMatch(/attempt 1\); retrying/);
    } finally {
      await holder.query('ROLLBACK').catch(() => undefined);
      holder.release();
    }
    const status = JSON.parse((await cli('fk', 'status', '--format', 'json')).stdout);
    expect(status.complete).toBe(true);
  });

  it('plan and add refuse a partitioned progress table in one line, exit 2; status says why', async () => {
    await t.pool.query(`
      ALTER TABLE mega_agent.case_intake_progress RENAME TO progress_old;
      CREATE TABLE mega_agent.case_intake_progress (LIKE mega_agent.progress_old INCLUDING DEFAULTS, PRIMARY KEY (user_id, case_id)) PARTITION BY HASH (user_id);
      CREATE TABLE mega_agent.progress_p0 PARTITION OF mega_agent.case_intake_progress FOR VALUES WITH (MODULUS 1, REMAINDER 0);
      DROP TABLE mega_agent.progress_old`);
    for (const args of [
      ['fk', 'plan'],
      ['fk', 'add', '--yes'],
    ]) {
      const r = await cli(...args);
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(/is partitioned.*nothing was changed/);
      expect(r.stderr).not.toMatch(/\n\s+at /);
    }
    const status = await cli('fk', 'status');
    expect(status.stdout).toMatch(/Refused: .*partitioned/);
  });

  it('fk abort removes a partial online run; status shows partial, then ready', async () => {
    await seedControls(t.pool);
    expect((await cli('fk', 'abort', '--yes')).stdout).toMatch(/No partial fk add to abort/);
    await t.pool.query('ALTER TABLE mega_agent.case_intake_progress ADD COLUMN case_id_uuid uuid');
    expect((await cli('fk', 'status')).stdout).toMatch(/Partial \(progress\): caseguard fk add resumes .*caseguard fk abort undoes it/);
    const r = await cli('fk', 'abort', '--yes');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/Removed column case_intake_progress\.case_id_uuid \(run \d+\); the table is back in its previous shape/);
    expect((await cli('fk', 'status')).stdout).toMatch(/Ready:/);
  });

  it('status names the blockers; add refuses with exit 1 naming recover; after recover it adds; drop rolls back', async () => {
    await seedDamage(t.pool);
    const status = JSON.parse((await cli('fk', 'status', '--format', 'json')).stdout);
    expect(status.blockers).toEqual({
      orphaned_progress: 3,
      invalid_case_id: 4,
      duplicate_progress: 2,
      orphaned_memory: 2,
      dangling_active_case: 2,
    });
    const refused = await cli('fk', 'add', '--yes');
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/caseguard recover/);
    expect((await cli('recover', '--yes', '--quarantine')).code).toBe(0);
    const added = await cli('fk', 'add', '--yes');
    expect(added.code, added.stderr).toBe(0);
    expect(added.stdout).toMatch(/done {4}progress\.validate_fk/);
    expect(added.stdout).toMatch(/done {4}memory\.validate_fk/);
    expect(added.stdout).toMatch(/done {4}active_case\.validate_fk/);
    const after = JSON.parse((await cli('fk', 'status', '--format', 'json')).stdout);
    expect(after.complete).toBe(true);
    expect(after.references.map((r: { state: { columnType: string } }) => r.state.columnType)).toEqual(['uuid', 'uuid', 'uuid']);
    expect((await cli('scan')).code).toBe(0);
    const dropped = await cli('fk', 'drop', '--yes', '--revert-type');
    expect(dropped.code).toBe(0);
    expect(dropped.stdout).toMatch(
      /Dropped fk_case_intake_progress_case, fk_case_memory_case, fk_bot_user_context_active_case; text again: progress, memory, active_case/,
    );
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
