/**
 * Where caseguard connects, decided once per command, in DESIGN.md's order:
 * --database-url, else DATABASE_URL, else the PG* variables where PGHOST, PGDATABASE or
 * PGSERVICE is set, else the embedded database in the data dir: --data-dir, CASEGUARD_DATA_DIR, or
 * the nearest .caseguard in the current folder or its parents (else ./.caseguard). A connection string is parsed
 * here (a URL, libpq key/value pairs or service=), so a bad one is a usage error before any
 * network call.
 */
import fs from 'node:fs';
import path from 'node:path';
import { UsageError } from '../errors.js';
import { describeParams, resolveParams, type ConnParams } from './connectionString.js';

export type ConnectionTarget =
  | { kind: 'server'; params: ConnParams; source: '--database-url' | 'DATABASE_URL' | 'PG* environment' }
  | { kind: 'embedded'; dataDir: string; source: 'embedded' };

export interface ConnectionRequest {
  databaseUrl?: string;
  dataDir?: string;
  /** --embedded: use the embedded database even where CI=true. */
  embedded?: boolean;
  /** The command judges or changes data, so CI must not silently fall back to embedded. */
  judgesData: boolean;
  env: NodeJS.ProcessEnv;
  cwd: string;
}

export const DEFAULT_DATA_DIR = '.caseguard';

export function resolveConnection(req: ConnectionRequest): ConnectionTarget {
  const env = req.env;
  if (req.embedded && req.databaseUrl) {
    throw new UsageError('--embedded and --database-url contradict each other; give one');
  }
  const chosen = req.dataDir ?? env.CASEGUARD_DATA_DIR;
  const dataDir = chosen !== undefined ? path.resolve(req.cwd, chosen) : (findDataDir(req.cwd) ?? path.resolve(req.cwd, DEFAULT_DATA_DIR));
  if (req.embedded) return { kind: 'embedded', dataDir, source: 'embedded' };
  if (req.databaseUrl !== undefined) {
    if (req.databaseUrl.trim() === '') throw new UsageError('--database-url is empty');
    return { kind: 'server', params: resolveParams(req.databaseUrl, env, '--database-url'), source: '--database-url' };
  }
  if (env.DATABASE_URL) return { kind: 'server', params: resolveParams(env.DATABASE_URL, env, 'DATABASE_URL'), source: 'DATABASE_URL' };
  if (env.PGHOST || env.PGDATABASE || env.PGSERVICE)
    return { kind: 'server', params: resolveParams(undefined, env), source: 'PG* environment' };
  if (req.judgesData && isCi(env)) {
    throw new UsageError(
      'CI=true and no database given: set DATABASE_URL (or --database-url, or PGHOST/PGDATABASE/PGSERVICE); ' +
        'pass --embedded to use the embedded database on purpose',
    );
  }
  return { kind: 'embedded', dataDir, source: 'embedded' };
}

/** The nearest .caseguard folder in `cwd` or its parents, as git finds .git; undefined if none. */
export function findDataDir(cwd: string): string | undefined {
  for (let dir = path.resolve(cwd); ; dir = path.dirname(dir)) {
    const candidate = path.join(dir, DEFAULT_DATA_DIR);
    if (fs.statSync(candidate, { throwIfNoEntry: false })?.isDirectory()) return candidate;
    if (path.dirname(dir) === dir) return undefined;
  }
}

/** Whether an embedded database was ever initialised in this data dir. */
export function hasEmbeddedDatabase(dataDir: string): boolean {
  return fs.existsSync(path.join(dataDir, 'pgdata', 'PG_VERSION'));
}

export function isCi(env: NodeJS.ProcessEnv): boolean {
  const ci = env.CI?.toLowerCase();
  return ci !== undefined && ci !== '' && ci !== 'false' && ci !== '0';
}

/** One-line name of the target, safe to print: "postgres://u@h:5432/db (from DATABASE_URL)". */
export function describeTarget(target: ConnectionTarget, env: NodeJS.ProcessEnv = process.env): string {
  if (target.kind === 'embedded') return `embedded PostgreSQL in ${target.dataDir}`;
  return `${describeParams(target.params, env)} (from ${target.source})`;
}

/** A server target from one connection string alone (no PG* variables): for libraries and tests. */
export function serverTarget(connectionString: string, source: '--database-url' | 'DATABASE_URL' = '--database-url'): ConnectionTarget {
  return { kind: 'server', params: resolveParams(connectionString, {}, source), source };
}
