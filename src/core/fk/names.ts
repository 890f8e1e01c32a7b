/**
 * The three references fk adds, and the names of what it creates for each: the constraint, its
 * index and the online scaffolding (shadow column, sync trigger and its function, NOT NULL check).
 */
export type ReferenceId = 'progress' | 'memory' | 'active_case';

export interface Reference {
  id: ReferenceId;
  /** Schema-qualified table. */
  table: string;
  relname: 'case_intake_progress' | 'case_memory' | 'bot_user_context';
  /** The text column that becomes uuid and references cases(case_id). */
  column: string;
  /** The table's key, for the backfill's keyset pages. */
  key: Array<{ name: string; type: 'text' | 'bigint' }>;
  notNull: boolean;
  /** The column is part of the primary key (the online swap attaches the key again). */
  inPrimaryKey: boolean;
  onDelete: 'CASCADE' | 'SET NULL';
  optional: boolean;
  shadow: string;
  trigger: string;
  fn: string;
  notNullCheck: string;
  /** The unique index the primary key is attached to after the swap (progress only). */
  uniqueIndex?: string;
  index: string;
  fk: string;
}

export const REFERENCES: readonly Reference[] = [
  {
    id: 'progress',
    table: 'mega_agent.case_intake_progress',
    relname: 'case_intake_progress',
    column: 'case_id',
    key: [
      { name: 'user_id', type: 'text' },
      { name: 'case_id', type: 'text' },
    ],
    notNull: true,
    inPrimaryKey: true,
    onDelete: 'CASCADE',
    optional: false,
    shadow: 'case_id_uuid',
    trigger: 'caseguard_sync_case_id_uuid',
    fn: 'caseguard.case_intake_progress_sync_case_id',
    notNullCheck: 'case_intake_progress_case_id_uuid_not_null',
    uniqueIndex: 'case_intake_progress_user_id_case_id_uuid_key',
    index: 'case_intake_progress_case_id_idx',
    fk: 'fk_case_intake_progress_case',
  },
  {
    id: 'memory',
    table: 'mega_agent.case_memory',
    relname: 'case_memory',
    column: 'case_id',
    key: [{ name: 'memory_id', type: 'bigint' }],
    notNull: true,
    inPrimaryKey: false,
    onDelete: 'CASCADE',
    optional: true,
    shadow: 'case_id_uuid',
    trigger: 'caseguard_sync_case_id_uuid',
    fn: 'caseguard.case_memory_sync_case_id',
    notNullCheck: 'case_memory_case_id_uuid_not_null',
    index: 'case_memory_case_id_idx',
    fk: 'fk_case_memory_case',
  },
  {
    id: 'active_case',
    table: 'mega_agent.bot_user_context',
    relname: 'bot_user_context',
    column: 'active_case_id',
    key: [{ name: 'user_id', type: 'text' }],
    notNull: false,
    inPrimaryKey: false,
    onDelete: 'SET NULL',
    optional: true,
    shadow: 'active_case_id_uuid',
    trigger: 'caseguard_sync_active_case_id_uuid',
    fn: 'caseguard.bot_user_context_sync_active_case_id',
    notNullCheck: 'bot_user_context_active_case_id_uuid_not_null',
    index: 'bot_user_context_active_case_id_idx',
    fk: 'fk_bot_user_context_active_case',
  },
];

export const PROGRESS = REFERENCES[0]!;
