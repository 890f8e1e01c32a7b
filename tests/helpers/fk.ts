import { inspectDatabase } from '../../src/core/db/inspect.js';
import { fkAdd, type FkAddOptions, type FkAddResult } from '../../src/core/fk/fk.js';
import { silentLogger } from '../../src/core/logger.js';
import type { TestDatabase } from './db.js';

export const TIMING = { lockTimeout: '2s', statementTimeout: '60s', retries: 3, backoffMs: 50 };

export async function runFkAdd(t: TestDatabase, options: Partial<FkAddOptions> = {}): Promise<FkAddResult> {
  return fkAdd(t.database, await inspectDatabase(t.database.db), {
    strategy: 'online',
    timing: TIMING,
    batchSize: 100,
    log: silentLogger,
    ...options,
  });
}
