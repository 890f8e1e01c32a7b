/** The default database: the embedded PostgreSQL, initialised and migrated on first use. */
import { existsSync } from 'node:fs';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli.js';

let dir: string;
beforeAll(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'caseguard-e2e-embedded-'));
  await fs.chmod(dir, 0o755);
});
afterAll(() => fs.rm(dir, { recursive: true, force: true }));

describe('the embedded database', () => {
  it('two simulate processes at once on a fresh data dir both succeed and lose nothing; the server stops after', async () => {
    const dataDir = path.join(dir, 'data');
    const args = ['simulate', '--users', '25', '--format', 'json', '--data-dir', dataDir];
    const [a, b] = await Promise.all([runCli(args, { cwd: dir }), runCli(args, { cwd: dir })]);
    expect(a.code, a.stderr).toBe(0);
    expect(b.code, b.stderr).toBe(0);
    const [ra, rb] = [JSON.parse(a.stdout), JSON.parse(b.stdout)];
    expect(ra.cases + rb.cases).toBe(50);
    expect(a.stderr).toMatch(/embedded PostgreSQL \d+ in/);
    expect(existsSync(path.join(dataDir, 'pgdata', 'postmaster.pid'))).toBe(false);

    // Both runs' rows are there on the next start.
    const c = await runCli(['simulate', '--users', '1', '--format', 'json', '--data-dir', dataDir], { cwd: dir });
    expect(c.code).toBe(0);
    expect(existsSync(path.join(dataDir, 'pgdata', 'postmaster.pid'))).toBe(false);
  });

  it('is found like git finds .git: from a subfolder the nearest .caseguard is used; where there is none, reading commands exit 4 and create nothing', async () => {
    const project = path.join(dir, 'project');
    const deeper = path.join(project, 'tests', 'deeper');
    await fs.mkdir(deeper, { recursive: true });
    await fs.chmod(project, 0o755);
    const created = await runCli(['migrate'], { cwd: project });
    expect(created.code, created.stderr).toBe(0);
    const found = await runCli(['scan', '--format', 'json'], { cwd: deeper });
    expect(found.code, found.stderr).toBe(0);
    expect(found.stderr).toContain(`in ${path.join(project, '.caseguard')}`);
    expect(existsSync(path.join(deeper, '.caseguard'))).toBe(false);

    const elsewhere = path.join(dir, 'elsewhere');
    await fs.mkdir(elsewhere);
    for (const args of [['scan'], ['runs'], ['quarantine', 'list'], ['fk', 'status'], ['recover', '--dry-run']]) {
      const r = await runCli(args, { cwd: elsewhere });
      expect(r.code, args.join(' ')).toBe(4);
      expect(r.stderr).toMatch(
        /no embedded database found \(looked for \.caseguard in .*elsewhere or its parents\); run caseguard migrate/,
      );
    }
    expect(await fs.readdir(elsewhere)).toEqual([]);
  });

  it('with CI=true, --embedded opts in explicitly', async () => {
    const r = await runCli(['simulate', '--users', '2', '--embedded', '--data-dir', path.join(dir, 'ci'), '--format', 'json'], {
      env: { CI: 'true' },
      cwd: dir,
    });
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout).users).toBe(2);
  });
});
