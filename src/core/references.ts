/**
 * The three tables that refer to a case, described once. scan's findings, recover's targets and
 * its quarantine, fk's references, undo's safety checks and the printers all read this; the
 * tuned SQL of scan and recover stays hand-written (tests/unit/references.test.ts fails when a
 * reference or a check is added without its SQL).
 */

/** The referencing tables, as named in mega_agent. */
export type ReferencingTable = 'case_intake_progress' | 'case_memory' | 'bot_user_context';

/** A reference's short id: what `--reference` takes. */
export type ReferenceId = 'progress' | 'memory' | 'active_case';

export interface CaseReference {
  id: ReferenceId;
  table: ReferencingTable;
  /** The column that names the case (text in the legacy shape, uuid after fk add). */
  column: 'case_id' | 'active_case_id';
  /** When a row was last written: what `scan --since` filters on. */
  timeColumn: 'updated_at' | 'created_at';
  /** The foreign key's action once fk add has added it. */
  onDelete: 'CASCADE' | 'SET NULL';
  /** Optional tables may be absent (their checks are skipped, their references left out). */
  optional: boolean;
  /** The table's key, for keyset pages and for matching a quarantined row to its place. */
  key: ReadonlyArray<{ name: string; type: 'text' | 'bigint' }>;
  /** The key is an identity column (a restored row keeps its value: OVERRIDING SYSTEM VALUE). */
  identityKey: boolean;
  /** The column may be NULL (a user without an active case). */
  nullable: boolean;
  /** What a row of it is, for messages: "progress row", "memory row", "active-case pointer". */
  label: string;
}

export const PROGRESS_REFERENCE: CaseReference = {
  id: 'progress',
  table: 'case_intake_progress',
  column: 'case_id',
  timeColumn: 'updated_at',
  onDelete: 'CASCADE',
  optional: false,
  key: [
    { name: 'user_id', type: 'text' },
    { name: 'case_id', type: 'text' },
  ],
  identityKey: false,
  nullable: false,
  label: 'progress row',
};

export const MEMORY_REFERENCE: CaseReference = {
  id: 'memory',
  table: 'case_memory',
  column: 'case_id',
  timeColumn: 'created_at',
  onDelete: 'CASCADE',
  optional: true,
  key: [{ name: 'memory_id', type: 'bigint' }],
  identityKey: true,
  nullable: false,
  label: 'memory row',
};

export const POINTER_REFERENCE: CaseReference = {
  id: 'active_case',
  table: 'bot_user_context',
  column: 'active_case_id',
  timeColumn: 'updated_at',
  onDelete: 'SET NULL',
  optional: true,
  key: [{ name: 'user_id', type: 'text' }],
  identityKey: false,
  nullable: true,
  label: 'active-case pointer',
};

/** In the order fk adds them and scan reads them. */
export const CASE_REFERENCES: readonly CaseReference[] = [PROGRESS_REFERENCE, MEMORY_REFERENCE, POINTER_REFERENCE];

export const REFERENCE_IDS: readonly ReferenceId[] = CASE_REFERENCES.map((r) => r.id);

/** The reference a table holds; undefined for a table that is none of them. */
export function referenceOfTable(table: string): CaseReference | undefined {
  return CASE_REFERENCES.find((r) => r.table === table);
}

export function referenceById(id: ReferenceId): CaseReference {
  return CASE_REFERENCES.find((r) => r.id === id)!;
}

/** "case_intake_progress.case_id → cases (ON DELETE CASCADE)" */
export function describeReference(r: CaseReference): string {
  return `${r.table}.${r.column} → cases (ON DELETE ${r.onDelete})`;
}
