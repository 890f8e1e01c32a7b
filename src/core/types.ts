/**
 * caseguard's domain words, used the same way in code, output and docs:
 *
 * - case: a row of mega_agent.cases, identified by a uuid (its canonical id).
 * - intake progress: a row of mega_agent.case_intake_progress: one user's position in the
 *   intake questionnaire for one case. Its case_id is text in the legacy shape.
 * - orphan: a row that references a case that does not exist (progress, memory, or a user's
 *   active-case pointer).
 * - canonical id: the lower-case hyphenated spelling of a uuid, what `uuid::text` returns.
 *   PostgreSQL accepts other spellings (upper case, braces, no hyphens, a hyphen every four
 *   digits); they name the same case.
 * - shape: legacy (progress.case_id text, no foreign key) or uuid (uuid column with the FK).
 * - check: one named integrity query; a finding is one row a check reports.
 * - run: one journaled execution of a mutating command (recover, fk, restore, undo).
 * - journal: caseguard.runs and caseguard.run_items, the record of every run and what it did.
 * - quarantine: caseguard.quarantine, full copies of rows a run moved aside; they can be restored.
 */
export type { DatabaseShape, Shape } from './db/inspect.js';
export type { Database, Db, Executor, Tx } from './db/database.js';
export type { Logger } from './logger.js';
