/**
 * The ensure-case guard. Every handler but start runs behind it: when the case an intake points
 * to is missing (the incident: progress written without its case), the case is re-created with
 * its id preserved, so the user can carry on and memory has a case to land on.
 */
import type { Executor } from '../db/database.js';
import type { Logger } from '../logger.js';
import { drizzleRunner, type SqlRunner } from '../db/statement.js';
import { canonicalUuid } from '../uuid.js';
import * as store from './store.js';
import type { HandlerName } from './handlerName.js';

/** What the guard needs of an intake: whose it is and the case it names (as stored). */
export interface GuardedRow {
  user_id: string;
  case_id: string;
  /** Whether the case exists, when the caller read it already (saves a lookup). */
  case_found?: boolean;
  /** The canonical spelling of case_id (null: no uuid), when the caller read it already. */
  canonical_id?: string | null;
}

export type Guarded<R extends GuardedRow = store.ProgressRow> =
  { kind: 'ok'; row: R; caseId: string; recovered: boolean } | { kind: 'damaged'; row: R };

/**
 * The guard for any handler of the application's that works on an existing intake: call it in
 * the handler's transaction (or on its database) with the progress row it read. A missing case
 * is re-created with its id preserved; a case_id that is no uuid comes back as damaged.
 */
export async function ensureCase<R extends GuardedRow>(
  tx: Executor,
  input: { row: R; handler: HandlerName | (string & {}); log: Logger },
): Promise<Guarded<R>> {
  return guardCase(drizzleRunner(tx), input);
}

/** ensureCase on any runner: caseguard's own handlers run it in their pipelined transactions. */
export async function guardCase<R extends GuardedRow>(
  db: SqlRunner,
  input: { row: R; handler: HandlerName | (string & {}); log: Logger },
): Promise<Guarded<R>> {
  const { row, handler, log } = input;
  const caseId = row.canonical_id === undefined ? canonicalUuid(row.case_id) : (row.canonical_id ?? undefined);
  const fields = { user_id: row.user_id, case_id: row.case_id, handler };
  if (!caseId) {
    // Not a uuid at all: nothing to re-create. `caseguard scan` reports it as invalid_case_id.
    log.error({ event: 'intake.case_missing', ...fields, reason: 'case_id is not a uuid' });
    return { kind: 'damaged', row };
  }
  const found = row.case_found ?? (await db.run(store.caseExists(caseId))).length > 0;
  if (found) return { kind: 'ok', row, caseId, recovered: false };

  log.warn({ event: 'ensure_case_exists.case_missing', ...fields });
  const inserted = await db.run(
    store.insertCase({
      caseId,
      userId: row.user_id,
      title: store.RECOVERED_TITLE,
      status: 'intake',
      metadata: { recovered_by: 'ensure_case_exists', handler },
    }),
  );
  // Nothing inserted: the case was created meanwhile (the caller's read was older than that).
  if (inserted.length === 0) return { kind: 'ok', row, caseId, recovered: false };
  log.info({ event: 'intake.case_recovered', ...fields, case_id: caseId });
  return { kind: 'ok', row, caseId, recovered: true };
}
