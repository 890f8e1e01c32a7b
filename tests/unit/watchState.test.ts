/** watch's state and batches: what a commit makes judged again, and what replacing findings tells. */
import { describe, expect, it } from 'vitest';
import type { Pgoutput } from 'pg-logical-replication';
import { domainOf, emptyBatch, isEmpty, lsnValue, mergeCommit, noteChange } from '../../src/core/watch/changes.js';
import { FindingsState, rowKey } from '../../src/core/watch/state.js';
import type { Finding } from '../../src/core/scan/scan.js';

const X = 'abcdef00-0000-4000-a000-000000000100';
const Y = 'abcdef00-0000-4000-a000-000000000200';

const progress = (user: string, caseId: string, check: Finding['check'] = 'orphaned_progress'): Finding => ({
  check,
  table: 'case_intake_progress',
  user_id: user,
  case_id: caseId,
  canonical_id: caseId,
  owner: null,
  memory_id: null,
  detail: 'no case with this id',
});
const memory = (id: number, caseId: string): Finding => ({
  check: 'orphaned_memory',
  table: 'case_memory',
  user_id: 'u-mem',
  case_id: caseId,
  canonical_id: caseId,
  owner: null,
  memory_id: id,
  detail: 'no case with this id',
});

const relation = (name: string): Pgoutput.MessageRelation => ({
  tag: 'relation',
  relationOid: 1,
  schema: 'mega_agent',
  name,
  replicaIdentity: 'default',
  columns: [],
  keyColumns: [],
});

describe('FindingsState', () => {
  it('tells what came and went, and only once however often a row is judged again', () => {
    const state = new FindingsState();
    const first = state.replace('all', [progress('u1', X), memory(7, Y)]);
    expect(first.detected).toHaveLength(2);
    const again = state.replace({ users: ['u1'], memoryIds: [], caseIds: [] }, [progress('u1', X)]);
    expect(again).toMatchObject({ detected: [], resolved: [] });
    expect(again.rows.size).toBe(0);
    const gone = state.replace({ users: [], memoryIds: [], caseIds: [X] }, []);
    expect(gone.resolved.map((f) => f.user_id)).toEqual(['u1']);
    expect([...gone.rows]).toEqual([[rowKey(progress('u1', X)), []]]);
    // the memory row was outside that domain: kept
    expect(state.counts().get('orphaned_memory')?.count).toBe(1);
    expect(state.missingCases()).toBe(1);
  });

  it('keeps rows outside the domain, and counts distinct cases per check', () => {
    const state = new FindingsState();
    state.replace('all', [progress('u1', X), progress('u2', X), progress('u3', Y, 'owner_mismatch')]);
    state.replace({ users: ['u3'], memoryIds: [], caseIds: [] }, []);
    expect(state.counts().get('orphaned_progress')).toMatchObject({ count: 2, distinctCases: 1 });
    expect(state.counts().has('owner_mismatch')).toBe(false);
    expect(
      state
        .rowsNaming(X)
        .map((f) => f.user_id)
        .sort(),
    ).toEqual(['u1', 'u2']);
  });

  it('keys rows so that any user id is one row (quotes, tabs, newlines)', () => {
    const hostile = 'o\'neil\t"x"\n]';
    expect(rowKey(progress(hostile, X))).not.toBe(rowKey(progress(`${hostile}x`, X)));
    expect(JSON.parse(rowKey(progress(hostile, X)))).toEqual(['p', hostile, X]);
  });
});

describe('batches', () => {
  it('gathers the users, memory rows and cases a transaction touched, judged at its commit', () => {
    const txn = emptyBatch();
    noteChange(txn, { tag: 'insert', relation: relation('case_intake_progress'), new: { user_id: 'u1', case_id: X } });
    noteChange(txn, { tag: 'delete', relation: relation('case_memory'), key: { memory_id: '9' }, old: null });
    noteChange(txn, { tag: 'insert', relation: relation('cases'), new: { case_id: Y, user_id: 'owner' } });
    noteChange(txn, { tag: 'delete', relation: relation('cases'), key: { case_id: X }, old: null });
    noteChange(txn, { tag: 'insert', relation: { ...relation('cases'), schema: 'public' }, new: { case_id: X, user_id: 'x' } });
    const pending = emptyBatch();
    expect(isEmpty(pending)).toBe(true);
    mergeCommit(pending, txn, '0/16B3748', 1000);
    expect(pending).toMatchObject({ commits: 1, changes: 4, lsn: '0/16B3748', firstCommitMs: 1000 });
    expect([...pending.users].sort()).toEqual(['owner', 'u1']);
    expect([...pending.memoryIds]).toEqual(['9']);
    expect([...pending.deleted]).toEqual([X]);
    expect([...pending.named]).toEqual([Y]);
  });

  it('judges again the rows with findings that name a case just made', () => {
    const state = new FindingsState();
    state.replace('all', [progress('u1', Y), memory(5, Y), progress('u2', X)]);
    const batch = emptyBatch();
    batch.named.add(Y);
    expect(domainOf(batch, state)).toEqual({ users: ['u1'], memoryIds: ['5'], caseIds: [] });
  });

  it('orders LSNs as numbers', () => {
    expect(lsnValue('1/0') > lsnValue('0/FFFFFFFF')).toBe(true);
    expect(lsnValue('0/A') > lsnValue('0/9')).toBe(true);
  });
});
