/**
 * The Drizzle tables are the source of truth at compile time: a column renamed in the schema
 * breaks the build of the intake store (its row types and statements are derived from the
 * table objects). A copy of src/ is typechecked as it is (it must compile: the fixture is sound)
 * and with one column renamed (it must not, and the errors must be in the store).
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const run = promisify(execFile);
const root = path.resolve(import.meta.dirname, '../..');
const tsc = path.join(root, 'node_modules/typescript/bin/tsc');

async function typecheck(dir: string): Promise<string> {
  try {
    await run(process.execPath, [tsc, '-p', path.join(dir, 'tsconfig.build.json'), '--noEmit'], { cwd: dir });
    return '';
  } catch (error) {
    return (error as { stdout?: string }).stdout ?? String(error);
  }
}

describe('a column renamed in the schema', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'caseguard-rename-'));
    await fs.cp(path.join(root, 'src'), path.join(dir, 'src'), { recursive: true });
    for (const file of ['tsconfig.json', 'tsconfig.build.json', 'package.json'])
      await fs.copyFile(path.join(root, file), path.join(dir, file));
    await fs.symlink(path.join(root, 'node_modules'), path.join(dir, 'node_modules'), 'dir');
  });
  afterAll(async () => {
    if (dir) await fs.rm(dir, { recursive: true, force: true });
  });

  it('the copy compiles as it is, and not with current_step renamed: the store is where it breaks', { timeout: 120_000 }, async () => {
    expect(await typecheck(dir)).toBe('');

    const contract = path.join(dir, 'src/core/schema/contract.ts');
    const source = await fs.readFile(contract, 'utf8');
    expect(source).toContain("integer('current_step')");
    await fs.writeFile(contract, source.replace("integer('current_step')", "integer('current_position')"));

    const errors = await typecheck(dir);
    expect(errors).toMatch(/src\/core\/intake\/store\.ts\(\d+,\d+\): error TS/);
    expect(errors).toMatch(/current_step/);
  });
});
