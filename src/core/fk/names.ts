/** The names of what fk add creates: the constraint, its index and the online scaffolding. */
export const NAMES = {
  table: 'mega_agent.case_intake_progress',
  shadow: 'case_id_uuid',
  trigger: 'caseguard_sync_case_id_uuid',
  fn: 'caseguard.case_intake_progress_sync_case_id',
  notNullCheck: 'case_intake_progress_case_id_uuid_not_null',
  uniqueIndex: 'case_intake_progress_user_id_case_id_uuid_key',
  caseIdIndex: 'case_intake_progress_case_id_idx',
  fk: 'fk_case_intake_progress_case',
} as const;
