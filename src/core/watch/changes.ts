/**
 * From the slot's messages to what must be judged again. A transaction's changes are gathered
 * until its commit (a transient state inside one transaction is never judged), then merged
 * into the batch the next judgement reads: the users whose progress or pointer changed, the
 * memory rows that changed, the cases created or changed (whose rows with findings are judged
 * again: a row naming a case that did not exist is a finding already) and the cases deleted
 * (every row naming them is looked up).
 */
import type { Pgoutput } from 'pg-logical-replication';
import type { Domain } from '../scan/queries.js';
import type { FindingsState } from './state.js';

export interface Batch {
  /** The transactions' ids: the judgement waits until its snapshot sees them. */
  xids: Set<number>;
  users: Set<string>;
  memoryIds: Set<string>;
  /** Cases deleted (or given another id): every row naming one is read. */
  deleted: Set<string>;
  /** Cases created or changed: the rows with findings naming one are judged again. */
  named: Set<string>;
  /** A truncate, or a table's columns changed: everything is judged again (after inspecting the shape). */
  rescan: boolean;
  reinspect: boolean;
  /** Row changes and commits in the batch. */
  changes: number;
  commits: number;
  /** When its first and last commits committed (ms since the epoch). */
  firstCommitMs?: number;
  lastCommitMs?: number;
  /** Where the slot may be acknowledged once the batch is applied. */
  lsn?: string;
}

export function emptyBatch(): Batch {
  return {
    xids: new Set(),
    users: new Set(),
    memoryIds: new Set(),
    deleted: new Set(),
    named: new Set(),
    rescan: false,
    reinspect: false,
    changes: 0,
    commits: 0,
  };
}

export function isEmpty(batch: Batch): boolean {
  return batch.commits === 0 && !batch.rescan;
}

type Row = Record<string, unknown> | null | undefined;
const text = (row: Row, column: string): string | undefined => {
  const v = row?.[column];
  return v === null || v === undefined ? undefined : String(v);
};

/** One insert, update or delete of a watched table, into the open transaction's batch. */
export function noteChange(batch: Batch, message: Pgoutput.MessageInsert | Pgoutput.MessageUpdate | Pgoutput.MessageDelete): void {
  if (message.relation.schema !== 'mega_agent') return;
  const fresh = message.tag === 'delete' ? undefined : message.new;
  // the old key comes with a delete, and with an update that changed the key (or REPLICA IDENTITY FULL)
  const old = message.tag === 'insert' ? undefined : (message.old ?? message.key);
  batch.changes += 1;
  const add = (set: Set<string>, value: string | undefined) => value !== undefined && set.add(value);
  switch (message.relation.name) {
    case 'case_intake_progress':
    case 'bot_user_context':
      add(batch.users, text(fresh, 'user_id'));
      add(batch.users, text(old, 'user_id'));
      return;
    case 'case_memory':
      add(batch.memoryIds, text(fresh, 'memory_id'));
      add(batch.memoryIds, text(old, 'memory_id'));
      return;
    case 'cases': {
      const id = text(fresh, 'case_id');
      const oldId = text(old, 'case_id');
      if (message.tag === 'delete' || (oldId !== undefined && oldId !== id)) add(batch.deleted, oldId);
      if (id !== undefined) {
        batch.named.add(id);
        // the owner's progress may now name its own case, or (an owner changed) another user's
        add(batch.users, text(fresh, 'user_id'));
        add(batch.users, text(old, 'user_id'));
      }
      return;
    }
  }
}

/** A committed transaction's batch into the pending one. */
export function mergeCommit(into: Batch, txn: Batch, lsn: string, commitMs: number): void {
  for (const key of ['users', 'memoryIds', 'deleted', 'named'] as const) for (const v of txn[key]) into[key].add(v);
  for (const xid of txn.xids) into.xids.add(xid);
  into.rescan ||= txn.rescan;
  into.reinspect ||= txn.reinspect;
  into.changes += txn.changes;
  into.commits += 1;
  into.firstCommitMs ??= commitMs;
  into.lastCommitMs = commitMs;
  into.lsn = lsn;
}

/** The rows a batch could have changed the judgement of, the state's rows naming changed cases included. */
export function domainOf(batch: Batch, state: FindingsState): Domain {
  const users = new Set(batch.users);
  const memoryIds = new Set(batch.memoryIds);
  for (const id of batch.named) {
    for (const f of state.rowsNaming(id)) {
      if (f.table === 'case_memory') memoryIds.add(String(f.memory_id));
      else users.add(f.user_id);
    }
  }
  return { users: [...users], memoryIds: [...memoryIds], caseIds: [...batch.deleted] };
}

/** "X/Y" as a number, for ordering LSNs. */
export function lsnValue(lsn: string): bigint {
  const [hi = '0', lo = '0'] = lsn.split('/');
  return (BigInt(`0x${hi}`) << 32n) | BigInt(`0x${lo}`);
}
