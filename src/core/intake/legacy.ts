/**
 * THE OLD BUGGY START, kept only to reproduce the incident in `caseguard simulate` and in tests.
 * It writes the progress row first, outside any transaction, and the case second (or never):
 * a crash in between, or a caller that skips the case, leaves an orphaned progress row.
 * Nothing else may call it; the fixed start is createIntakeHandlers().start.
 */
import { randomUUID } from 'node:crypto';
import type { Db } from '../db/database.js';
import type { Logger } from '../logger.js';
import { QUESTIONNAIRE } from './questionnaire.js';
import { drizzleRunner } from '../db/statement.js';
import * as store from './store.js';

export interface LegacyStartOptions {
  /** The old code sometimes never created the case at all. */
  createCase: boolean;
  /** The id to use (a fresh uuid when not given). */
  caseId?: string;
  /** Runs between the two writes; throwing here is a crash. */
  betweenWrites?: () => void | Promise<void>;
}

export async function legacyBuggyStart(db: Db, log: Logger, userId: string, options: LegacyStartOptions): Promise<string> {
  const caseId = options.caseId ?? randomUUID();
  const runner = drizzleRunner(db);
  await runner.run(store.insertProgress({ userId, caseId, blockId: QUESTIONNAIRE[0]!.id }));
  await options.betweenWrites?.();
  if (options.createCase) {
    await runner.run(
      store.insertCase({ caseId, userId, title: store.NEW_CASE_TITLE, status: 'intake', metadata: { source: 'legacy_intake' } }),
    );
    log.info({ event: 'intake.case_created', user_id: userId, case_id: caseId, handler: 'legacy_start' });
  }
  return caseId;
}
