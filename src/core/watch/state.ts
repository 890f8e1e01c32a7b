/**
 * What watch knows: every finding there is, held per row (a progress row by its user and case id
 * as stored, a memory row by its id, a pointer by its user) and indexed by user, memory id and
 * the case each names. After a commit, the rows that commit could have changed the judgement of
 * (a Domain) are judged again by the scan's own query, and their findings replaced: what is
 * replaced is exactly what the query read, so the set stays the one a full scan would return.
 * Judging a row again gives the same answer however often it is done: a change replayed after a
 * restart counts nothing twice.
 */
import { MISSING_CASE_CHECKS, type CheckId } from '../scan/checks.js';
import type { Domain } from '../scan/queries.js';
import type { CheckCount, Finding } from '../scan/scan.js';

type RowRef = Pick<Finding, 'table' | 'user_id' | 'case_id' | 'memory_id'>;

/** A source row's identity (JSON: it is saved as text, and a user id may hold any character). */
export function rowKey(row: RowRef): string {
  if (row.table === 'case_memory') return JSON.stringify(['m', row.memory_id]);
  if (row.table === 'bot_user_context') return JSON.stringify(['b', row.user_id]);
  return JSON.stringify(['p', row.user_id, row.case_id]);
}

const MISSING = new Set<CheckId>(MISSING_CASE_CHECKS);

/** Findings of a missing case (orphaned_progress, orphaned_memory, dangling_active_case) that came or went. */
export interface StateChange {
  detected: Finding[];
  resolved: Finding[];
  /** The rows whose findings changed, with their findings now (none: the row has none). */
  rows: Map<string, Finding[]>;
}

function addTo<K>(index: Map<K, Set<string>>, key: K, row: string): void {
  let set = index.get(key);
  if (!set) index.set(key, (set = new Set()));
  set.add(row);
}

function removeFrom<K>(index: Map<K, Set<string>>, key: K, row: string): void {
  const set = index.get(key);
  set?.delete(row);
  if (set?.size === 0) index.delete(key);
}

export class FindingsState {
  private readonly rows = new Map<string, Finding[]>();
  private readonly byUser = new Map<string, Set<string>>();
  private readonly byMemory = new Map<string, Set<string>>();
  private readonly byCase = new Map<string, Set<string>>();

  /** The rows with findings that name this case (what a case created or changed can change). */
  rowsNaming(caseId: string): Finding[] {
    return [...(this.byCase.get(caseId) ?? [])].flatMap((key) => this.rows.get(key)?.slice(0, 1) ?? []);
  }

  /**
   * Replaces the findings of every row the domain selects ('all': every row) with `fresh`, the
   * findings the scan's query returned for that domain now.
   */
  replace(domain: Domain | 'all', fresh: readonly Finding[]): StateChange {
    const before = new Map<string, Finding>();
    const was = new Map<string, string>();
    for (const key of this.selected(domain)) {
      const list = this.rows.get(key) ?? [];
      was.set(key, JSON.stringify(list));
      for (const f of list) if (MISSING.has(f.check)) before.set(`${key} ${f.check}`, f);
      this.drop(key);
    }
    const detected: Finding[] = [];
    for (const f of fresh) {
      const key = rowKey(f);
      const list = this.rows.get(key);
      if (list) list.push(f);
      else this.add(key, f);
      if (!MISSING.has(f.check)) continue;
      if (!before.delete(`${key} ${f.check}`)) detected.push(f);
    }
    const rows = new Map<string, Finding[]>();
    for (const key of new Set([...was.keys(), ...fresh.map(rowKey)])) {
      const now = this.rows.get(key) ?? [];
      if (was.get(key) !== JSON.stringify(now)) rows.set(key, now);
    }
    return { detected, resolved: [...before.values()], rows };
  }

  /** Every finding held. */
  all(): Finding[] {
    return [...this.rows.values()].flat();
  }

  /** Per check: the count and the distinct uuids without a case (the numbers scan reports). */
  counts(): Map<CheckId, CheckCount> {
    const counts = new Map<CheckId, CheckCount & { ids: Set<string> }>();
    for (const list of this.rows.values()) {
      for (const f of list) {
        let c = counts.get(f.check);
        if (!c) counts.set(f.check, (c = { count: 0, distinctCases: 0, samples: [], ids: new Set() }));
        c.count += 1;
        if (f.canonical_id !== null) c.ids.add(f.canonical_id);
      }
    }
    for (const c of counts.values()) c.distinctCases = c.ids.size;
    return counts;
  }

  /** Distinct uuids referenced without a case, over progress, memory and pointers. */
  missingCases(): number {
    const ids = new Set<string>();
    for (const list of this.rows.values()) for (const f of list) if (MISSING.has(f.check) && f.canonical_id) ids.add(f.canonical_id);
    return ids.size;
  }

  private selected(domain: Domain | 'all'): Set<string> {
    if (domain === 'all') return new Set(this.rows.keys());
    const keys = new Set<string>();
    const take = (set: Set<string> | undefined) => set?.forEach((k) => keys.add(k));
    for (const user of domain.users) take(this.byUser.get(user));
    for (const id of domain.memoryIds) take(this.byMemory.get(id));
    for (const id of domain.caseIds) take(this.byCase.get(id));
    return keys;
  }

  private add(key: string, f: Finding): void {
    this.rows.set(key, [f]);
    if (f.table === 'case_memory') addTo(this.byMemory, String(f.memory_id), key);
    else addTo(this.byUser, f.user_id, key);
    if (f.canonical_id !== null) addTo(this.byCase, f.canonical_id, key);
  }

  private drop(key: string): void {
    const f = this.rows.get(key)?.[0];
    if (!f) return;
    this.rows.delete(key);
    if (f.table === 'case_memory') removeFrom(this.byMemory, String(f.memory_id), key);
    else removeFrom(this.byUser, f.user_id, key);
    if (f.canonical_id !== null) removeFrom(this.byCase, f.canonical_id, key);
  }
}
