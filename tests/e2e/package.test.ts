/**
 * The core as the application it protects uses it: the package as `npm pack` makes it, imported
 * by name from a project of its own, runs a scan and an intake on a test database, and its
 * types check in a TypeScript consumer.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { expected, F, seedDamage } from '../helpers/fixtures.js';

const root = fileURLToPath(new URL('../..', import.meta.url));

const CONSUMER = `
import { openDatabase, serverTarget, inspectDatabase, scan, createIntakeHandlers, keepsPreparedStatements, ensureCase, silentLogger, CaseguardError } from 'caseguard';
const database = await openDatabase(serverTarget(process.argv[2]), { log: silentLogger, pipeline: true });
try {
  const shape = await inspectDatabase(database.db);
  const report = await scan(database.db, shape, { databaseName: database.name, limit: 0, gate: { failOn: 'error', maxFindings: 0 } });
  const preparedStatements = await keepsPreparedStatements(database.pool);
  const handlers = createIntakeHandlers({ db: database.db, shape, log: silentLogger, preparedStatements });
  const started = await handlers.start('package-user');
  const status = await handlers.status('package-user');
  // the application's own handler, behind the guard, on an intake whose case is missing
  const guarded = await database.db.transaction((tx) =>
    ensureCase(tx, { row: { user_id: process.argv[3], case_id: process.argv[4] }, handler: 'app_resume', log: silentLogger }));
  console.log(JSON.stringify({
    orphans: report.checks.find((c) => c.id === 'orphaned_progress').count,
    started: started.outcome, caseId: started.caseId, status: status.outcome,
    guarded: guarded.kind === 'ok' && guarded.recovered,
    preparedStatements,
    typed: new CaseguardError('x', 2).exitCode,
  }));
} finally {
  await database.close();
}
`;

const TYPED_CONSUMER = `
import { scan, type ScanReport, type Reply, type IntakeHandlers, type Database } from 'caseguard';
export async function orphans(database: Database, shape: Parameters<typeof scan>[1]): Promise<number> {
  const report: ScanReport = await scan(database.db, shape, { databaseName: 'x', limit: 0, gate: { failOn: 'error', maxFindings: 0 } });
  return report.checks.filter((c) => c.id === 'orphaned_progress').reduce((n, c) => n + c.count, 0);
}
export async function start(handlers: IntakeHandlers): Promise<Reply['outcome']> {
  return (await handlers.start('u')).outcome;
}
// a mistake the types must catch: a check id that does not exist
export const wrong: ScanReport['checks'][number]['id'] = 'orphaned_progress';
`;

describe('the packed package', () => {
  let t: TestDatabase;
  let project: string;
  beforeAll(async () => {
    t = await createTestDatabase();
    await seedDamage(t.pool);
    project = await fs.mkdtemp(path.join(os.tmpdir(), 'caseguard-consumer-'));
    // what npm publishes (dist is built before the e2e tests run)
    const tarball = execFileSync('npm', ['pack', '--ignore-scripts', '--silent', '--pack-destination', project], {
      cwd: root,
      encoding: 'utf8',
    })
      .trim()
      .split('\n')
      .at(-1)!;
    const installed = path.join(project, 'node_modules', 'caseguard');
    await fs.mkdir(installed, { recursive: true });
    execFileSync('tar', ['-xzf', path.join(project, tarball), '-C', installed, '--strip-components=1']);
    // its dependencies: this checkout's, as an install would provide them
    await fs.symlink(path.join(root, 'node_modules'), path.join(installed, 'node_modules'));
    // a TypeScript consumer has @types/node of its own
    await fs.symlink(path.join(root, 'node_modules', '@types'), path.join(project, 'node_modules', '@types'));
    await fs.writeFile(path.join(project, 'package.json'), JSON.stringify({ name: 'consumer', type: 'module', private: true }));
  });
  afterAll(async () => {
    await fs.rm(project, { recursive: true, force: true });
    await t?.drop();
  });

  it('imported by name, runs a scan and an intake', async () => {
    await fs.writeFile(path.join(project, 'consumer.mjs'), CONSUMER);
    const args = ['consumer.mjs', t.url, F.orphanCanonical.user, F.orphanCanonical.caseId];
    const out = JSON.parse(execFileSync(process.execPath, args, { cwd: project, encoding: 'utf8' }));
    expect(out).toMatchObject({
      orphans: expected.orphaned_progress,
      started: 'started',
      status: 'shown',
      guarded: true,
      preparedStatements: true,
      typed: 2,
    });
    const recovered = await t.pool.query('SELECT title, metadata FROM mega_agent.cases WHERE case_id = $1', [F.orphanCanonical.caseId]);
    expect(recovered.rows[0]).toEqual({
      title: 'Intake Session (Recovered)',
      metadata: { recovered_by: 'ensure_case_exists', handler: 'app_resume' },
    });
    const stored = await t.pool.query("SELECT case_id FROM mega_agent.case_intake_progress WHERE user_id = 'package-user'");
    expect(stored.rows[0].case_id).toBe(out.caseId);
  });

  it('ships only the public entry point: internals are not importable by path', async () => {
    await fs.writeFile(path.join(project, 'internal.mjs'), "await import('caseguard/dist/core/scan/scan.js');");
    expect(() => execFileSync(process.execPath, ['internal.mjs'], { cwd: project, stdio: 'pipe' })).toThrow(
      /ERR_PACKAGE_PATH_NOT_EXPORTED/,
    );
  });

  it('its types check in a TypeScript consumer, and catch a wrong check id', async () => {
    const tsc = path.join(root, 'node_modules', '.bin', 'tsc');
    const options = [
      '--noEmit',
      '--strict',
      '--module',
      'nodenext',
      '--moduleResolution',
      'nodenext',
      '--target',
      'es2022',
      '--skipLibCheck',
      '--types',
      'node',
    ];
    await fs.writeFile(path.join(project, 'typed.ts'), TYPED_CONSUMER);
    try {
      execFileSync(tsc, [...options, 'typed.ts'], { cwd: project, stdio: 'pipe', encoding: 'utf8' });
    } catch (error) {
      throw new Error(`the consumer does not typecheck: ${(error as { stdout?: string }).stdout}`);
    }
    await fs.writeFile(path.join(project, 'typed.ts'), TYPED_CONSUMER.replace("= 'orphaned_progress'", "= 'orphaned_progres'"));
    expect(() => execFileSync(tsc, [...options, 'typed.ts'], { cwd: project, stdio: 'pipe' })).toThrow();
  });
});
