import { inspectDatabase } from '../../src/core/db/inspect.js';
import { fkAdd, type FkAddOptions, type FkAddResult } from '../../src/core/fk/fk.js';
import { silentLogger } from '../../src/core/logger.js';
import type { TestDatabase } from './db.js';

export const TIMING = { lockTimeoutMs: 100, maxLockTimeoutMs: 2000, retryBudgetMs: 30_000, maxAttempts: 30, statementTimeout: '60s' };

export async function runFkAdd(t: TestDatabase, options: Partial<FkAddOptions> = {}): Promise<FkAddResult> {
  return fkAdd(t.database, await inspectDatabase(t.database.db), {
    strategy: 'online',
    timing: TIMING,
    batchSize: 100,
    log: silentLogger,
    ...options,
  });
}
