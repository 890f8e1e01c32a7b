/**
 * The application's tables in schema mega_agent, in their legacy shape: progress.case_id is
 * text with no foreign key (the mismatch behind the incident). caseguard does not own these
 * tables in production; `caseguard migrate` creates them for local and test databases only.
 * drizzle-kit generates drizzle/contract/ from this file (npm run db:generate).
 */
import { sql } from 'drizzle-orm';
import { bigint, integer, jsonb, pgSchema, primaryKey, text, timestamp, uuid } from 'drizzle-orm/pg-core';

export const megaAgent = pgSchema('mega_agent');

export const cases = megaAgent.table('cases', {
  caseId: uuid('case_id')
    .primaryKey()
    .default(sql`gen_random_uuid()`),
  userId: text('user_id').notNull(),
  title: text('title').notNull(),
  status: text('status').notNull().default('open'),
  metadata: jsonb('metadata').notNull().default({}),
  createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
  updatedAt: timestamp('updated_at', { withTimezone: true }).notNull().defaultNow(),
});

export const caseIntakeProgress = megaAgent.table(
  'case_intake_progress',
  {
    userId: text('user_id').notNull(),
    /** text, not uuid: the legacy shape. After `caseguard fk add` the column is uuid. */
    caseId: text('case_id').notNull(),
    currentBlock: text('current_block'),
    currentStep: integer('current_step').notNull().default(0),
    completedBlocks: text('completed_blocks')
      .array()
      .notNull()
      .default(sql`'{}'::text[]`),
    answers: jsonb('answers').notNull().default({}),
    status: text('status').notNull().default('in_progress'),
    createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
    updatedAt: timestamp('updated_at', { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [primaryKey({ columns: [t.userId, t.caseId] })],
);

/** Optional: absent in some deployments; checks on it are then skipped. */
export const caseMemory = megaAgent.table('case_memory', {
  memoryId: bigint('memory_id', { mode: 'number' }).primaryKey().generatedAlwaysAsIdentity(),
  caseId: text('case_id').notNull(),
  userId: text('user_id').notNull(),
  kind: text('kind').notNull(),
  content: jsonb('content').notNull(),
  createdAt: timestamp('created_at', { withTimezone: true }).defaultNow(),
});

/** Optional: the bot's pointer from a user to the case they are working on. */
export const botUserContext = megaAgent.table('bot_user_context', {
  userId: text('user_id').primaryKey(),
  activeCaseId: text('active_case_id'),
  updatedAt: timestamp('updated_at', { withTimezone: true }).defaultNow(),
});
