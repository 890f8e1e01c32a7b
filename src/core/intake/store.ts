/**
 * The SQL of the intake flow. Every statement binds its values as parameters and works on both
 * shapes: untyped parameters take the type of the column they meet (text or uuid).
 */
import { sql } from 'drizzle-orm';
import type { Executor } from '../db/database.js';
import { INTAKE_USER_LOCK } from '../db/locks.js';
import { UUID_SPELLING_SQL } from '../uuid.js';

/** A progress row as the intake reads it (a type alias: the driver's rows are records). */
export type ProgressRow = {
  user_id: string;
  case_id: string;
  current_block: string | null;
  current_step: number;
  completed_blocks: string[];
  answers: Record<string, string>;
  status: string;
  /** Whether the case it names exists (uuid semantics), read in the same statement. */
  case_found?: boolean;
};

export const RECOVERED_TITLE = 'Intake Session (Recovered)';
export const NEW_CASE_TITLE = 'Intake Session';

/** Serialises everything one user does: concurrent starts of one user create one case. */
export async function lockUser(tx: Executor, userId: string): Promise<void> {
  await tx.execute(sql`SELECT pg_advisory_xact_lock(${INTAKE_USER_LOCK}, hashtext(${userId}))`);
}

/**
 * The user's intake in progress (the most recently touched one when there are several), and
 * whether its case exists, in one round trip.
 */
export async function activeProgress(tx: Executor, userId: string): Promise<ProgressRow | undefined> {
  const result = await tx.execute<ProgressRow>(sql`
    SELECT p.user_id, p.case_id::text AS case_id, p.current_block, p.current_step, p.completed_blocks, p.answers, p.status,
           EXISTS (SELECT 1 FROM mega_agent.cases c
                    WHERE c.case_id = CASE WHEN p.case_id::text ~* ${UUID_SPELLING_SQL} THEN p.case_id::text::uuid END) AS case_found
      FROM mega_agent.case_intake_progress p
     WHERE p.user_id = ${userId} AND p.status = 'in_progress'
     ORDER BY p.updated_at DESC
     LIMIT 1`);
  return result.rows[0];
}

/** The user's most recent intake in any status. */
export async function latestProgress(tx: Executor, userId: string): Promise<ProgressRow | undefined> {
  const result = await tx.execute<ProgressRow>(sql`
    SELECT user_id, case_id::text AS case_id, current_block, current_step, completed_blocks, answers, status
      FROM mega_agent.case_intake_progress
     WHERE user_id = ${userId}
     ORDER BY updated_at DESC
     LIMIT 1`);
  return result.rows[0];
}

export async function caseExists(tx: Executor, canonicalId: string): Promise<boolean> {
  const result = await tx.execute(sql`SELECT 1 FROM mega_agent.cases WHERE case_id = ${canonicalId}::uuid`);
  return result.rows.length > 0;
}

/** Inserts a case; with an id, keeps it (and does nothing if it exists meanwhile). Returns the id. */
export async function insertCase(
  tx: Executor,
  values: { caseId?: string; userId: string; title: string; status: string; metadata: Record<string, unknown> },
): Promise<string | undefined> {
  const metadata = JSON.stringify(values.metadata);
  const result = values.caseId
    ? await tx.execute<{ case_id: string }>(sql`
        INSERT INTO mega_agent.cases (case_id, user_id, title, status, metadata)
        VALUES (${values.caseId}::uuid, ${values.userId}, ${values.title}, ${values.status}, ${metadata}::jsonb)
        ON CONFLICT (case_id) DO NOTHING
        RETURNING case_id::text AS case_id`)
    : await tx.execute<{ case_id: string }>(sql`
        INSERT INTO mega_agent.cases (user_id, title, status, metadata)
        VALUES (${values.userId}, ${values.title}, ${values.status}, ${metadata}::jsonb)
        RETURNING case_id::text AS case_id`);
  return result.rows[0]?.case_id;
}

export async function insertProgress(
  tx: Executor,
  values: { userId: string; caseId: string; blockId: string },
): Promise<void> {
  await tx.execute(sql`
    INSERT INTO mega_agent.case_intake_progress (user_id, case_id, current_block, current_step)
    VALUES (${values.userId}, ${values.caseId}, ${values.blockId}, 0)`);
}

/** Saves an answer and, where the memory table exists, its memory row, in one statement. */
export async function saveAnswer(
  tx: Executor,
  row: ProgressRow,
  change: { key: string; value: string; blockId: string | null; step: number; completedBlocks: string[]; status: string },
  memory?: { caseId: string; kind: string; content: Record<string, unknown> },
): Promise<void> {
  const update = sql`
    UPDATE mega_agent.case_intake_progress
       SET answers = answers || jsonb_build_object(${change.key}::text, ${change.value}::text),
           current_block = ${change.blockId},
           current_step = ${change.step},
           completed_blocks = ARRAY(SELECT jsonb_array_elements_text(${JSON.stringify(change.completedBlocks)}::jsonb)),
           status = ${change.status},
           updated_at = now()
     WHERE user_id = ${row.user_id} AND case_id = ${row.case_id}`;
  if (!memory) {
    await tx.execute(update);
    return;
  }
  await tx.execute(sql`
    WITH saved AS (${update} RETURNING 1)
    INSERT INTO mega_agent.case_memory (case_id, user_id, kind, content, created_at)
    SELECT ${memory.caseId}, ${row.user_id}, ${memory.kind}, ${JSON.stringify(memory.content)}::jsonb, now() FROM saved`);
}

export async function setProgressStatus(tx: Executor, row: ProgressRow, status: string): Promise<void> {
  await tx.execute(sql`
    UPDATE mega_agent.case_intake_progress SET status = ${status}, updated_at = now()
     WHERE user_id = ${row.user_id} AND case_id = ${row.case_id}`);
}

export async function setCaseStatus(tx: Executor, canonicalId: string, status: string): Promise<void> {
  await tx.execute(sql`
    UPDATE mega_agent.cases SET status = ${status}, updated_at = now() WHERE case_id = ${canonicalId}::uuid`);
}

export async function insertMemory(
  tx: Executor,
  values: { caseId: string; userId: string; kind: string; content: Record<string, unknown> },
): Promise<void> {
  await tx.execute(sql`
    INSERT INTO mega_agent.case_memory (case_id, user_id, kind, content, created_at)
    VALUES (${values.caseId}, ${values.userId}, ${values.kind}, ${JSON.stringify(values.content)}::jsonb, now())`);
}

/** Points the user at a case (or at none). */
export async function setActiveCase(tx: Executor, userId: string, caseId: string | null): Promise<void> {
  await tx.execute(sql`
    INSERT INTO mega_agent.bot_user_context (user_id, active_case_id, updated_at)
    VALUES (${userId}, ${caseId}, now())
    ON CONFLICT (user_id) DO UPDATE SET active_case_id = EXCLUDED.active_case_id, updated_at = now()`);
}
