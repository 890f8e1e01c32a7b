/**
 * caseguard's own bookkeeping, in schema caseguard: the run journal, the per-run record of
 * every row a run created, changed or moved aside, and the quarantine. Created idempotently
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
  dbUser: text('db_user').notNull().default(sql`current_user`),
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

/** What a run did to one row: created it, changed it (before/after), or quarantined it. */
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
    createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [index('run_items_run_id_idx').on(t.runId, t.itemId)],
);

/** Full copies of rows moved aside; nothing is deleted without a copy here first. */
export const quarantine = caseguardSchema.table(
  'quarantine',
  {
    quarantineId: bigint('quarantine_id', { mode: 'number' })
      .primaryKey()
      .generatedAlwaysAsIdentity(),
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
  (t) => [index('quarantine_run_id_idx').on(t.runId)],
);

/**
 * What a recover run is going to do, snapshotted once at its start (one set-based pass over the
 * tables) and then worked through in keyset batches by seq. Deleted when the run ends: run_items
 * is the lasting record of what was done. Transient, so UNLOGGED and without a foreign key to
 * runs (migration 0003: drizzle-kit has no word for UNLOGGED).
 */
export const runTargets = caseguardSchema.table(
  'run_targets',
  {
    runId: bigint('run_id', { mode: 'number' }).notNull(),
    kind: text('kind').notNull(),
    seq: bigint('seq', { mode: 'number' }).notNull(),
    checkId: text('check_id').notNull(),
    userId: text('user_id'),
    caseId: text('case_id'),
    canonicalId: uuid('canonical_id'),
    memoryId: bigint('memory_id', { mode: 'number' }),
    owners: integer('owners'),
    ownerList: text('owner_list').array(),
  },
  (t) => [primaryKey({ columns: [t.runId, t.kind, t.seq] })],
);
