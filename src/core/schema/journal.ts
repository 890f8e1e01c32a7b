/**
 * caseguard's own bookkeeping, in schema caseguard: the run journal, the per-run record of
 * every row a run created, changed or moved aside, and the quarantine. (A recover run's targets
 * live in a temporary table of its own session: see recover/targets.ts.) Created idempotently
 * when first needed (see db/migrate.ts); drizzle-kit generates drizzle/caseguard/ from this file.
 */
import { sql } from 'drizzle-orm';
import { bigint, boolean, index, integer, jsonb, pgSchema, primaryKey, text, timestamp, uuid } from 'drizzle-orm/pg-core';

export const caseguardSchema = pgSchema('caseguard');

/** One row per mutating run (recover, fk, quarantine restore, undo), dry or real. */
export const runs = caseguardSchema.table('runs', {
  runId: bigint('run_id', { mode: 'number' }).primaryKey().generatedAlwaysAsIdentity(),
  command: text('command').notNull(),
  options: jsonb('options').notNull().default({}),
  dryRun: boolean('dry_run').notNull().default(false),
  dbUser: text('db_user')
    .notNull()
    .default(sql`current_user`),
  osUser: text('os_user'),
  host: text('host'),
  /** The process's identity on the server: the application_name of its connections. */
  process: text('process'),
  status: text('status').notNull().default('running'),
  counts: jsonb('counts').notNull().default({}),
  error: text('error'),
  startedAt: timestamp('started_at', { withTimezone: true }).notNull().defaultNow(),
  finishedAt: timestamp('finished_at', { withTimezone: true }),
});

/**
 * What a run did: to one row (created, changed before/after, quarantined, rejected), or, for
 * the cases one recover batch created, to all of them in one item: their ids in case_ids,
 * row_count of them, and after = {"xmin": the batch transaction's id}. A case whose xmin is
 * still that id has not been written since (any update makes a new row version), which is
 * what undo checks before it deletes it. Runs before migration 0004 journaled one item per
 * created case with its whole row in after; undo reads both.
 */
export const runItems = caseguardSchema.table(
  'run_items',
  {
    itemId: bigint('item_id', { mode: 'number' }).primaryKey().generatedAlwaysAsIdentity(),
    runId: bigint('run_id', { mode: 'number' })
      .notNull()
      .references(() => runs.runId),
    action: text('action').notNull(),
    checkId: text('check_id'),
    tableName: text('table_name').notNull(),
    rowKey: jsonb('row_key').notNull(),
    before: jsonb('before'),
    after: jsonb('after'),
    /** How many rows the item stands for: 1, or the cases of a batch (case_ids). */
    rowCount: integer('row_count').notNull().default(1),
    caseIds: uuid('case_ids').array(),
    createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [index('run_items_run_id_idx').on(t.runId, t.itemId)],
);

/** Full copies of rows moved aside; nothing is deleted without a copy here first. */
export const quarantine = caseguardSchema.table(
  'quarantine',
  {
    quarantineId: bigint('quarantine_id', { mode: 'number' }).primaryKey().generatedAlwaysAsIdentity(),
    runId: bigint('run_id', { mode: 'number' })
      .notNull()
      .references(() => runs.runId),
    sourceTable: text('source_table').notNull(),
    reason: text('reason').notNull(),
    rowData: jsonb('row_data').notNull(),
    quarantinedAt: timestamp('quarantined_at', { withTimezone: true }).notNull().defaultNow(),
    restoredAt: timestamp('restored_at', { withTimezone: true }),
    restoredByRun: bigint('restored_by_run', { mode: 'number' }).references(() => runs.runId),
  },
  // a run's rows in id order: restore's keyset pages come by this index whatever the statistics say
  (t) => [index('quarantine_run_id_quarantine_id_idx').on(t.runId, t.quarantineId)],
);

/**
 * Cases deleted (or given another id), as the deletion trigger records them: what lets
 * `scan --since` see an orphan made by deleting its case. Rows come only once the DBA has
 * installed the trigger (`caseguard migrate --track-deletions`); without it the table stays empty.
 */
export const caseDeletions = caseguardSchema.table(
  'case_deletions',
  {
    deletionId: bigint('deletion_id', { mode: 'number' }).primaryKey().generatedAlwaysAsIdentity(),
    caseId: uuid('case_id').notNull(),
    deletedAt: timestamp('deleted_at', { withTimezone: true })
      .notNull()
      .default(sql`clock_timestamp()`),
  },
  (t) => [index('case_deletions_deleted_at_idx').on(t.deletedAt)],
);

/** When deletion tracking was installed (one row while it is): scan --since is complete from then on. */
export const deletionTracking = caseguardSchema.table('deletion_tracking', {
  installedAt: timestamp('installed_at', { withTimezone: true }).primaryKey().defaultNow(),
});

/**
 * The logical replication slots `caseguard watch` made, and the publication each follows: a
 * slot of that name made by anything else, or for another publication, is refused.
 */
export const watchSlots = caseguardSchema.table('watch_slots', {
  slotName: text('slot_name').primaryKey(),
  publication: text('publication').notNull(),
  /** watch made the publication too: --drop-slot drops it with the last slot that follows it. */
  createdPublication: boolean('created_publication').notNull().default(false),
  createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
  createdBy: text('created_by')
    .notNull()
    .default(sql`current_user`),
  /** When watch's findings were first saved for the slot: a restart loads them instead of scanning. */
  stateSavedAt: timestamp('state_saved_at', { withTimezone: true }),
  /** The shape they were judged in (shape, id column types, proofs): another one means a scan. */
  stateShape: text('state_shape'),
});

/**
 * The findings watch holds for a slot, a row each for a source row (its key as watch writes it);
 * saved before the slot is acknowledged past the commit that changed them.
 */
export const watchFindings = caseguardSchema.table(
  'watch_findings',
  {
    slotName: text('slot_name')
      .notNull()
      .references(() => watchSlots.slotName, { onDelete: 'cascade' }),
    rowKey: text('row_key').notNull(),
    findings: jsonb('findings').notNull(),
  },
  (t) => [primaryKey({ columns: [t.slotName, t.rowKey] })],
);
