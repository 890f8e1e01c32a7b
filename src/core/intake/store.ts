/**
 * The SQL of the intake flow, one Statement each (see db/statement.ts): built with the query
 * builder or the `sql` tag over the Drizzle table objects, compiled once, run by name.
 *
 * The two shapes of a case_id column (legacy text, or uuid after `caseguard fk add`) are handled
 * explicitly, and one statement text serves both, because a prepared statement outlives the
 * online change of a column's type: reads return case_id as text and, for the legacy column,
 * check on the server whether it spells a uuid; comparisons are made on its text; values
 * written are uuids, which a text column takes as their canonical spelling.
 */
import { and, desc, eq, sql, type SQL } from 'drizzle-orm';
import { QueryBuilder } from 'drizzle-orm/pg-core';
import { drizzle } from 'drizzle-orm/node-postgres';
import { INTAKE_USER_LOCK } from '../db/locks.js';
import { Statement, settable, type Bindings, type RowOf } from '../db/statement.js';
import type { Shape } from '../db/inspect.js';
import { botUserContext, caseIntakeProgress as progress, caseMemory, cases } from '../schema/contract.js';
import { UUID_SPELLING_SQL } from '../uuid.js';

/** A progress row as the intake reads it: the columns by their SQL names, typed from the schema. */
export type ProgressRow = Pick<
  RowOf<typeof progress>,
  'user_id' | 'case_id' | 'current_block' | 'current_step' | 'completed_blocks' | 'status'
> & {
  answers: Record<string, string>;
  /** Whether the case it names exists, read in the same statement. */
  case_found?: boolean;
  /** The canonical spelling of case_id, or null when it is no uuid, read in the same statement. */
  canonical_id?: string | null;
};

export const RECOVERED_TITLE = 'Intake Session (Recovered)';
export const NEW_CASE_TITLE = 'Intake Session';

const select = new QueryBuilder();
const write = drizzle.mock();

/** A case id to write into a case_id column of either shape. */
const asUuid = (value: unknown) => sql`${value}::uuid`;
/** The progress row of this case id, on either shape (the read returned its text). */
const sameCase = (caseId: unknown) => sql`${progress.caseId}::text = ${caseId}::text`;

/** The columns every read returns; case_id as text whatever the shape. */
const progressColumns = {
  user_id: progress.userId,
  case_id: sql<string>`${progress.caseId}::text`.as(progress.caseId.name),
  current_block: progress.currentBlock,
  current_step: progress.currentStep,
  completed_blocks: progress.completedBlocks,
  answers: progress.answers,
  status: progress.status,
};

const lockUserStatement = new Statement<{ userId: string }, unknown>(
  'lock_user',
  ['userId'],
  (v) => sql`SELECT pg_advisory_xact_lock(${INTAKE_USER_LOCK}, hashtext(${v.userId}))`,
);

/** The user's intake in progress, its canonical case id and whether that case exists. */
const activeStatement = (name: string, canonical: SQL) =>
  new Statement<{ userId: string }, ProgressRow>(name, ['userId'], (v) =>
    select
      .select({
        ...progressColumns,
        canonical_id: sql<string | null>`${canonical}::text`.as('canonical_id'),
        case_found: sql<boolean>`EXISTS (SELECT 1 FROM ${cases} WHERE ${cases.caseId} = ${canonical})`.as('case_found'),
      })
      .from(progress)
      .where(and(eq(progress.userId, v.userId), eq(progress.status, 'in_progress')))
      .orderBy(desc(progress.updatedAt))
      .limit(1),
  );
const activeStatements: Record<Shape, Statement<{ userId: string }, ProgressRow>> = {
  legacy: activeStatement(
    'active_progress_text',
    sql`CASE WHEN ${progress.caseId}::text ~* ${UUID_SPELLING_SQL} THEN ${progress.caseId}::text::uuid END`,
  ),
  uuid: activeStatement('active_progress_uuid', sql`${progress.caseId}::text::uuid`),
};

const latestStatement = new Statement<{ userId: string }, ProgressRow>('latest_progress', ['userId'], (v) =>
  select.select(progressColumns).from(progress).where(eq(progress.userId, v.userId)).orderBy(desc(progress.updatedAt)).limit(1),
);

const caseExistsStatement = new Statement<{ caseId: string }, unknown>('case_exists', ['caseId'], (v) =>
  select
    .select({ found: sql`1` })
    .from(cases)
    .where(eq(cases.caseId, v.caseId)),
);

type CaseValues = { userId: string; title: string; status: string; metadata: Record<string, unknown> };
const insertCaseStatement = new Statement<CaseValues, { case_id: string }>('insert_case', ['userId', 'title', 'status', 'metadata'], (v) =>
  write.insert(cases).values(v).returning({ case_id: cases.caseId }),
);
const insertCaseWithIdStatement = new Statement<CaseValues & { caseId: string }, { case_id: string }>(
  'insert_case_with_id',
  ['caseId', 'userId', 'title', 'status', 'metadata'],
  (v) => write.insert(cases).values(v).onConflictDoNothing({ target: cases.caseId }).returning({ case_id: cases.caseId }),
);

const insertProgressStatement = new Statement<{ userId: string; caseId: string; blockId: string }, unknown>(
  'insert_progress',
  ['userId', 'caseId', 'blockId'],
  (v) => write.insert(progress).values({ userId: v.userId, caseId: asUuid(v.caseId), currentBlock: v.blockId, currentStep: 0 }),
);

type AnswerValues = {
  userId: string;
  caseId: string;
  key: string;
  value: string;
  blockId: string | null;
  step: number;
  completedBlocks: string[];
  status: string;
};
const saveAnswerUpdate = (v: Bindings<AnswerValues>) =>
  write
    .update(progress)
    .set(
      settable({
        answers: sql`${progress.answers} || jsonb_build_object(${v.key}::text, ${v.value}::text)`,
        currentBlock: v.blockId,
        currentStep: v.step,
        completedBlocks: v.completedBlocks,
        status: v.status,
        updatedAt: sql`now()`,
      }),
    )
    .where(and(eq(progress.userId, v.userId), sameCase(v.caseId)));
const answerKeys = ['userId', 'caseId', 'key', 'value', 'blockId', 'step', 'completedBlocks', 'status'] as const;
const saveAnswerStatement = new Statement<AnswerValues, unknown>('save_answer', answerKeys, saveAnswerUpdate);

type MemoryValues = { memoryCaseId: string; kind: string; content: Record<string, unknown> };
/** The answer and its memory row in one statement: the memory row is written only if the answer was. */
const saveAnswerWithMemoryStatement = new Statement<AnswerValues & MemoryValues, unknown>(
  'save_answer_with_memory',
  [...answerKeys, 'memoryCaseId', 'kind', 'content'],
  (v) => sql`
    WITH saved AS (${saveAnswerUpdate(v).getSQL()} RETURNING 1)
    INSERT INTO ${caseMemory} (${sql.identifier(caseMemory.caseId.name)}, ${sql.identifier(caseMemory.userId.name)}, ${sql.identifier(caseMemory.kind.name)},
                               ${sql.identifier(caseMemory.content.name)}, ${sql.identifier(caseMemory.createdAt.name)})
    SELECT ${asUuid(v.memoryCaseId)}, ${v.userId}, ${v.kind}, ${v.content}::jsonb, now() FROM saved`,
);

const setProgressStatusStatement = new Statement<{ userId: string; caseId: string; status: string }, unknown>(
  'set_progress_status',
  ['userId', 'caseId', 'status'],
  (v) =>
    write
      .update(progress)
      .set(settable({ status: v.status, updatedAt: sql`now()` }))
      .where(and(eq(progress.userId, v.userId), sameCase(v.caseId))),
);

const setCaseStatusStatement = new Statement<{ caseId: string; status: string }, unknown>('set_case_status', ['caseId', 'status'], (v) =>
  write
    .update(cases)
    .set(settable({ status: v.status, updatedAt: sql`now()` }))
    .where(eq(cases.caseId, v.caseId)),
);

const insertMemoryStatement = new Statement<{ caseId: string; userId: string; kind: string; content: Record<string, unknown> }, unknown>(
  'insert_memory',
  ['caseId', 'userId', 'kind', 'content'],
  (v) =>
    write
      .insert(caseMemory)
      .values({ caseId: asUuid(v.caseId), userId: v.userId, kind: v.kind, content: v.content, createdAt: sql`now()` }),
);

const setActiveCaseStatement = new Statement<{ userId: string; caseId: string | null }, unknown>(
  'set_active_case',
  ['userId', 'caseId'],
  (v) =>
    write
      .insert(botUserContext)
      .values({ userId: v.userId, activeCaseId: asUuid(v.caseId), updatedAt: sql`now()` })
      .onConflictDoUpdate({
        target: botUserContext.userId,
        set: { activeCaseId: sql`EXCLUDED.${sql.identifier(botUserContext.activeCaseId.name)}`, updatedAt: sql`now()` },
      }),
);

/** Serialises everything one user does: concurrent starts of one user create one case. */
export const lockUser = (userId: string) => lockUserStatement.with({ userId });

/**
 * The user's intake in progress (the most recently touched one when there are several), with
 * its canonical case id and whether that case exists.
 */
export const activeProgress = (shape: Shape, userId: string) => activeStatements[shape].with({ userId });

/** The user's most recent intake in any status. */
export const latestProgress = (userId: string) => latestStatement.with({ userId });

/** One row when the case exists. */
export const caseExists = (canonicalId: string) => caseExistsStatement.with({ caseId: canonicalId });

/** Inserts a case; with an id, keeps it (and inserts nothing if it exists meanwhile). Returns the id inserted. */
export const insertCase = ({ caseId, ...values }: CaseValues & { caseId?: string }) =>
  caseId ? insertCaseWithIdStatement.with({ ...values, caseId }) : insertCaseStatement.with(values);

export const insertProgress = (values: { userId: string; caseId: string; blockId: string }) => insertProgressStatement.with(values);

/** Saves an answer and, where the memory table exists, its memory row, in one statement. */
export function saveAnswer(
  row: ProgressRow,
  change: { key: string; value: string; blockId: string | null; step: number; completedBlocks: string[]; status: string },
  memory?: { caseId: string; kind: string; content: Record<string, unknown> },
) {
  const values = { ...change, userId: row.user_id, caseId: row.case_id };
  return memory
    ? saveAnswerWithMemoryStatement.with({ ...values, memoryCaseId: memory.caseId, kind: memory.kind, content: memory.content })
    : saveAnswerStatement.with(values);
}

export const setProgressStatus = (row: ProgressRow, status: string) =>
  setProgressStatusStatement.with({ userId: row.user_id, caseId: row.case_id, status });

export const setCaseStatus = (canonicalId: string, status: string) => setCaseStatusStatement.with({ caseId: canonicalId, status });

export const insertMemory = (values: { caseId: string; userId: string; kind: string; content: Record<string, unknown> }) =>
  insertMemoryStatement.with(values);

/** Points the user at a case (or at none). */
export const setActiveCase = (userId: string, caseId: string | null) => setActiveCaseStatement.with({ userId, caseId });
