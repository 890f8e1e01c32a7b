/**
 * The integrity checks, each with a stable id (a public interface: scan's JSON, CSV, JUnit and
 * Prometheus outputs name them). Identity is by uuid semantics: any spelling PostgreSQL accepts
 * as a uuid names that uuid.
 */
import type { ReferenceId, ReferencingTable } from '../references.js';

export type CheckId =
  | 'orphaned_progress'
  | 'invalid_case_id'
  | 'noncanonical_case_id'
  | 'duplicate_progress'
  | 'orphaned_memory'
  | 'dangling_active_case'
  | 'owner_mismatch';

export type Severity = 'error' | 'warn';

export interface CheckDefinition {
  id: CheckId;
  severity: Severity;
  title: string;
  /** The table the check needs besides cases; when it is an absent optional table, the check is skipped. */
  needs: ReferencingTable;
  /** Whether distinctCases (distinct uuids without a case) applies. */
  countsCases: boolean;
  /** The foreign key its findings block (fk add refuses while any exist), and why. */
  blocks?: { reference: ReferenceId; why: string };
}

export const CHECKS: readonly CheckDefinition[] = [
  {
    id: 'orphaned_progress',
    severity: 'error',
    title: 'progress rows naming a uuid with no case',
    needs: 'case_intake_progress',
    countsCases: true,
    blocks: { reference: 'progress', why: 'no case to reference' },
  },
  {
    id: 'invalid_case_id',
    severity: 'error',
    title: 'progress rows whose case_id is no uuid (blocks the FK)',
    needs: 'case_intake_progress',
    countsCases: false,
    blocks: { reference: 'progress', why: 'cannot become uuid' },
  },
  {
    id: 'noncanonical_case_id',
    severity: 'warn',
    title: 'non-canonical spellings of an existing case id',
    needs: 'case_intake_progress',
    countsCases: false,
  },
  {
    id: 'duplicate_progress',
    severity: 'error',
    title: "one user's progress rows naming one uuid in different spellings",
    needs: 'case_intake_progress',
    countsCases: false,
    blocks: { reference: 'progress', why: 'collide as uuid' },
  },
  {
    id: 'orphaned_memory',
    severity: 'error',
    title: 'memory rows whose case does not exist',
    needs: 'case_memory',
    countsCases: true,
    blocks: { reference: 'memory', why: 'memory without its case' },
  },
  {
    id: 'dangling_active_case',
    severity: 'error',
    title: 'active-case pointers naming a case that does not exist',
    needs: 'bot_user_context',
    countsCases: true,
    blocks: { reference: 'active_case', why: 'a pointer without its case' },
  },
  {
    id: 'owner_mismatch',
    severity: 'warn',
    title: "progress of one user pointing at another user's case",
    needs: 'case_intake_progress',
    countsCases: false,
  },
];

/** The checks whose findings block fk add, in CHECKS order. */
export const FK_BLOCKING_CHECKS: readonly CheckDefinition[] = CHECKS.filter((c) => c.blocks);

/** The ids of the checks of one severity, in CHECKS order: for help texts. */
export function checkList(severity: Severity): string {
  return CHECKS.filter((c) => c.severity === severity)
    .map((c) => c.id)
    .join(', ');
}

/** Checks whose findings name a uuid that has no case. */
export const MISSING_CASE_CHECKS: readonly CheckId[] = CHECKS.filter((c) => c.countsCases).map((c) => c.id);
