/**
 * Where caseguard connects, decided once per command, in DESIGN.md's order:
 * --database-url, else DATABASE_URL, else the PG* variables where PGHOST or PGDATABASE is
 * set, else the embedded database in the data dir.
 */
import path from 'node:path';
import { UsageError } from '../errors.js';

export type ConnectionTarget =
  | { kind: 'url'; url: string; source: '--database-url' | 'DATABASE_URL' }
  | { kind: 'pgenv'; source: 'PG* environment' }
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
  const dataDir = path.resolve(req.cwd, req.dataDir ?? env.CASEGUARD_DATA_DIR ?? DEFAULT_DATA_DIR);
  if (req.embedded) return { kind: 'embedded', dataDir, source: 'embedded' };
  if (req.databaseUrl !== undefined) {
    if (req.databaseUrl.trim() === '') throw new UsageError('--database-url is empty');
    return { kind: 'url', url: req.databaseUrl, source: '--database-url' };
  }
  if (env.DATABASE_URL) return { kind: 'url', url: env.DATABASE_URL, source: 'DATABASE_URL' };
  if (env.PGHOST || env.PGDATABASE) return { kind: 'pgenv', source: 'PG* environment' };
  if (req.judgesData && isCi(env)) {
    throw new UsageError(
      'CI=true and no database given: set DATABASE_URL (or --database-url, or PGHOST/PGDATABASE); ' +
        'pass --embedded to use the embedded database on purpose',
    );
  }
  return { kind: 'embedded', dataDir, source: 'embedded' };
}

export function isCi(env: NodeJS.ProcessEnv): boolean {
  const ci = env.CI?.toLowerCase();
  return ci !== undefined && ci !== '' && ci !== 'false' && ci !== '0';
}

/**
 * A connection string with its password replaced by ***, for output and logs. Handles URLs
 * and libpq key=value strings; anything unparseable is hidden whole rather than risked.
 */
export function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    for (const key of [...parsed.searchParams.keys()]) {
      if (/pass|secret|token|key/i.test(key)) parsed.searchParams.set(key, '***');
    }
    return parsed.toString();
  } catch {
    if (/=/.test(url)) return url.replace(/(password\s*=\s*)('([^'\\]|\\.)*'|\S+)/gi, '$1***');
    return '(unparseable connection string)';
  }
}

/** One-line name of the target, safe to print: "postgres://u:***@h:5432/db (from DATABASE_URL)". */
export function describeTarget(target: ConnectionTarget, env: NodeJS.ProcessEnv): string {
  switch (target.kind) {
    case 'url':
      return `${redactUrl(target.url)} (from ${target.source})`;
    case 'pgenv': {
      const host = env.PGHOST ?? 'localhost';
      const port = env.PGPORT ?? '5432';
      const db = env.PGDATABASE ?? env.PGUSER ?? env.USER ?? '';
      const user = env.PGUSER ? `${env.PGUSER}@` : '';
      return `postgres://${user}${host}:${port}/${db} (from PG* environment)`;
    }
    case 'embedded':
      return `embedded PostgreSQL in ${target.dataDir}`;
  }
}
