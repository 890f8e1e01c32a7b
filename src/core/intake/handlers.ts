/**
 * The fixed intake flow: transport-neutral handlers (a user id and a text or a choice in; a
 * reply with text and buttons out). Console, Telegram and simulate all call these.
 *
 * The rules the incident taught:
 * - start creates the case first and the progress second, in one transaction;
 * - every other handler runs behind the ensure-case guard (see ensureCase.ts);
 * - everything one user does is serialised (a per-user transaction-scoped advisory lock), so
 *   concurrent starts of one user create one case.
 */
import type { Db, Tx } from '../db/database.js';
import type { DatabaseShape } from '../db/inspect.js';
import { InternalError } from '../errors.js';
import type { Logger } from '../logger.js';
import { ensureCase, type Guarded } from './ensureCase.js';
import {
  QUESTIONNAIRE,
  TOTAL_QUESTIONS,
  nextPosition,
  questionAt,
  questionNumber,
  type Question,
} from './questionnaire.js';
import * as store from './store.js';

import type { HandlerName } from './handlerName.js';

export type { HandlerName } from './handlerName.js';

export interface Button {
  label: string;
  /** Opaque callback data: "<question key>=<value>", so a stale button can be recognised. */
  data: string;
}

/** What a handler did, for transports that react to it and for simulate's statistics. */
export type Outcome =
  | 'started'
  | 'already_in_progress'
  | 'answered'
  | 'reprompted'
  | 'completed'
  | 'cancelled'
  /** cancel asked to confirm: answers would be lost. */
  | 'confirm_cancel'
  | 'shown'
  | 'no_intake'
  | 'damaged';

export interface Reply {
  text: string;
  /** Choices to offer as buttons (one per row); empty for free-text questions. */
  buttons: Button[];
  outcome: Outcome;
  caseId?: string;
  /** True when the ensure-case guard re-created a missing case during this call. */
  recovered: boolean;
  /** The question the reply asks, when it asks one. */
  question?: { key: string; number: number };
}

export interface IntakeOptions {
  db: Db;
  shape: DatabaseShape;
  log: Logger;
  /** Fault injection for tests and simulate: runs between start's case and progress inserts. */
  afterCaseInsert?: (userId: string, caseId: string) => void | Promise<void>;
}

export interface IntakeHandlers {
  start(userId: string): Promise<Reply>;
  status(userId: string): Promise<Reply>;
  cancel(userId: string): Promise<Reply>;
  resume(userId: string): Promise<Reply>;
  choice(userId: string, data: string): Promise<Reply>;
  text(userId: string, text: string): Promise<Reply>;
}

const NO_INTAKE = 'You have no intake in progress. Send /intake_start to begin one.';

/** The bot's commands, for help texts and for answering an unknown one. */
export const COMMANDS = '/intake_start, /intake_status, /intake_resume, /intake_cancel, /help';

/** Callback data of the buttons that confirm or call off a cancel that would lose answers. */
export const CANCEL_CONFIRM = 'intake_cancel=confirm';
export const CANCEL_KEEP = 'intake_cancel=keep';

export function createIntakeHandlers(options: IntakeOptions): IntakeHandlers {
  const { db, shape, log } = options;

  /** Runs fn in a transaction holding the user's lock. */
  const serial = <T>(userId: string, fn: (tx: Tx) => Promise<T>): Promise<T> =>
    db.transaction(async (tx) => {
      await store.lockUser(tx, userId);
      return fn(tx);
    });

  /** The guard: the user's intake in progress, its case re-created if it was missing. */
  const withActive = (userId: string, handler: HandlerName, fn: (tx: Tx, g: Extract<Guarded, { kind: 'ok' }>) => Promise<Reply>) =>
    serial(userId, async (tx) => {
      const row = await store.activeProgress(tx, userId);
      if (!row) return reply(NO_INTAKE, 'no_intake');
      const guarded = await ensureCase(tx, { row, handler, shape, log });
      if (guarded.kind === 'damaged') {
        return reply(
          'Sorry, this intake cannot be resumed because its record is damaged. ' +
            'Our team has been notified; send /intake_start to begin a new one.',
          'damaged',
        );
      }
      const result = await fn(tx, guarded);
      return { ...result, caseId: guarded.caseId, recovered: guarded.recovered };
    });

  const answer = async (tx: Tx, g: Extract<Guarded, { kind: 'ok' }>, handler: HandlerName, raw: string): Promise<Reply> => {
    const at = questionAt(g.row.current_block, g.row.current_step);
    if (!at) return reply('This intake has no open question. Send /intake_status to see where it stands.', 'shown');
    const { question, blockIndex } = at;
    const parsed = parseAnswer(question, raw, handler);
    if (!parsed.ok) return { ...promptFor(blockIndex, g.row.current_step, parsed.error), outcome: 'reprompted' };

    const next = nextPosition(blockIndex, g.row.current_step);
    const completedBlocks = [...g.row.completed_blocks];
    const finished = next ? next.finishedBlock : at.block.id;
    if (finished && !completedBlocks.includes(finished)) completedBlocks.push(finished);
    // Tables in one order everywhere: cases, then progress (then memory and pointers). A
    // transaction that takes them the other way round can deadlock with caseguard fk add, which
    // locks cases before progress, as start writes them.
    if (!next) await store.setCaseStatus(tx, g.caseId, 'intake_complete');
    await store.saveAnswer(
      tx,
      g.row,
      {
        key: question.key,
        value: parsed.value,
        blockId: next?.blockId ?? null,
        step: next?.step ?? 0,
        completedBlocks,
        status: next ? 'in_progress' : 'completed',
      },
      shape.hasMemory
        ? { caseId: g.caseId, kind: 'intake_answer', content: { block: at.block.id, question: question.key, answer: parsed.value } }
        : undefined,
    );
    if (next) {
      const nextAt = questionAt(next.blockId, next.step);
      const intro = next.finishedBlock && nextAt ? `Thanks, "${at.block.title}" is done. Next: ${nextAt.block.title}.\n` : 'Saved.\n';
      return { ...promptFor(QUESTIONNAIRE.findIndex((b) => b.id === next.blockId), next.step, undefined, intro), outcome: 'answered' };
    }
    if (shape.hasMemory) {
      await store.insertMemory(tx, {
        caseId: g.caseId,
        userId: g.row.user_id,
        kind: 'intake_completed',
        content: { answers: { ...g.row.answers, [question.key]: parsed.value } },
      });
    }
    if (shape.hasUserContext) await store.setActiveCase(tx, g.row.user_id, null);
    log.info({ event: 'intake.completed', user_id: g.row.user_id, case_id: g.caseId, handler });
    return reply(
      `Thank you, your intake is complete. Your case reference is ${g.caseId}. A member of our team will review your case and contact you.`,
      'completed',
    );
  };

  const cancelIntake = async (tx: Tx, g: Extract<Guarded, { kind: 'ok' }>, handler: HandlerName): Promise<Reply> => {
    // cases first, then progress: the one table order (see answer)
    await store.setCaseStatus(tx, g.caseId, 'cancelled');
    await store.setProgressStatus(tx, g.row, 'cancelled');
    if (shape.hasUserContext) await store.setActiveCase(tx, g.row.user_id, null);
    log.info({ event: 'intake.cancelled', user_id: g.row.user_id, case_id: g.caseId, handler });
    return reply('Your intake has been cancelled. Send /intake_start whenever you want to begin again.', 'cancelled');
  };

  const repeatQuestion = (g: Extract<Guarded, { kind: 'ok' }>, intro: string): Reply => {
    const at = questionAt(g.row.current_block, g.row.current_step);
    return at ? promptFor(at.blockIndex, g.row.current_step, undefined, intro) : reply('Your intake has no open question.', 'shown');
  };

  return {
    start: (userId) =>
      serial(userId, async (tx) => {
        const existing = await store.activeProgress(tx, userId);
        if (existing) {
          const guarded = await ensureCase(tx, { row: existing, handler: 'start', shape, log });
          if (guarded.kind === 'ok') {
            const at = questionAt(existing.current_block, existing.current_step);
            const prompt = at ? promptFor(at.blockIndex, existing.current_step, undefined, 'You already have an intake in progress; let us continue.\n') : reply(NO_INTAKE, 'shown');
            return { ...prompt, outcome: 'already_in_progress', caseId: guarded.caseId, recovered: guarded.recovered };
          }
        }
        const first = QUESTIONNAIRE[0]!;
        const caseId = await store.insertCase(tx, {
          userId,
          title: store.NEW_CASE_TITLE,
          status: 'intake',
          metadata: { source: 'intake' },
        });
        if (!caseId) throw new InternalError('the case insert returned no id');
        // A damaged intake cannot be continued: close it (after the case: one table order).
        if (existing) await store.setProgressStatus(tx, existing, 'abandoned');
        log.info({ event: 'intake.case_created', user_id: userId, case_id: caseId, handler: 'start' });
        await options.afterCaseInsert?.(userId, caseId);
        await store.insertProgress(tx, { userId, caseId, blockId: first.id });
        if (shape.hasUserContext) await store.setActiveCase(tx, userId, caseId);
        return {
          ...promptFor(0, 0, undefined, `Welcome! Let us open your case. There are ${TOTAL_QUESTIONS} questions in ${QUESTIONNAIRE.length} parts; send /intake_cancel to stop at any time.\n${first.title}:\n`),
          outcome: 'started',
          caseId,
        };
      }),

    status: async (userId) => {
      const shown = await withActive(userId, 'status', async (_tx, g) => {
        const at = questionAt(g.row.current_block, g.row.current_step);
        const done = g.row.completed_blocks.length;
        if (!at) return reply(`Your intake is in progress: no open question; ${done} of ${QUESTIONNAIRE.length} parts complete.`, 'shown');
        const where = `question ${questionNumber(at.blockIndex, g.row.current_step)} of ${TOTAL_QUESTIONS} (${at.block.title})`;
        // The current question again, with its buttons: the user can answer right away.
        return promptFor(at.blockIndex, g.row.current_step, undefined, `Your intake is in progress: ${where}; ${done} of ${QUESTIONNAIRE.length} parts complete.\n`);
      });
      if (shown.outcome !== 'no_intake') return shown;
      const latest = await store.latestProgress(db, userId);
      if (latest?.status === 'completed') return { ...shown, text: 'Your most recent intake is complete. Send /intake_start to begin another one.' };
      return shown;
    },

    cancel: (userId) =>
      withActive(userId, 'cancel', async (tx, g) => {
        const answered = Object.keys(g.row.answers ?? {}).length;
        if (answered === 0) return cancelIntake(tx, g, 'cancel');
        return {
          text: `You have answered ${answered} question(s); cancelling closes this intake and its case. Cancel it?`,
          buttons: [
            { label: 'Yes, cancel it', data: CANCEL_CONFIRM },
            { label: 'No, keep going', data: CANCEL_KEEP },
          ],
          outcome: 'confirm_cancel',
          recovered: false,
        };
      }),

    resume: (userId) =>
      withActive(userId, 'resume', async (tx, g) => {
        if (shape.hasUserContext) await store.setActiveCase(tx, userId, g.caseId);
        const at = questionAt(g.row.current_block, g.row.current_step);
        if (!at) return reply('Your intake has no open question.', 'shown');
        return { ...promptFor(at.blockIndex, g.row.current_step, undefined, 'Welcome back! Here is where you left off.\n'), outcome: 'shown' };
      }),

    choice: (userId, data) =>
      withActive(userId, 'choice', async (tx, g) => {
        if (data === CANCEL_CONFIRM) return cancelIntake(tx, g, 'choice');
        if (data === CANCEL_KEEP) return repeatQuestion(g, 'Good, let us go on.\n');
        return answer(tx, g, 'choice', data);
      }),

    text: async (userId, text) => {
      // A command nobody knows (a typo such as /intake_stauts) is never stored as an answer.
      if (text.trim().startsWith('/')) return reply(`Unknown command ${text.trim().split(/\s+/)[0]}. Commands: ${COMMANDS}.`, 'shown');
      return withActive(userId, 'text', (tx, g) => answer(tx, g, 'text', text));
    },
  };
}

function reply(text: string, outcome: Outcome): Reply {
  return { text, buttons: [], outcome, recovered: false };
}

function buttonsFor(question: Question): Button[] {
  return question.kind === 'choice' ? question.options.map((o) => ({ label: o.label, data: `${question.key}=${o.value}` })) : [];
}

function promptFor(blockIndex: number, step: number, error?: string, intro = ''): Reply {
  const block = QUESTIONNAIRE[blockIndex]!;
  const question = block.questions[step]!;
  const number = questionNumber(blockIndex, step);
  const prefix = error ? `${error}\n` : intro;
  return {
    text: `${prefix}(${number}/${TOTAL_QUESTIONS}) ${question.prompt}`,
    buttons: buttonsFor(question),
    outcome: 'shown',
    recovered: false,
    question: { key: question.key, number },
  };
}

/**
 * A button press must name the current question (stale buttons are refused); a typed answer to
 * a choice question is accepted when it matches an option's label or value.
 */
function parseAnswer(question: Question, raw: string, handler: HandlerName): { ok: true; value: string } | { ok: false; error: string } {
  if (question.kind === 'text') {
    if (handler === 'choice') return { ok: false, error: 'That button belongs to an earlier question; please type your answer.' };
    return question.validate(raw);
  }
  if (handler === 'choice') {
    const [key, value] = splitOnce(raw, '=');
    if (key !== question.key) return { ok: false, error: 'That button belongs to an earlier question; please choose again.' };
    const option = question.options.find((o) => o.value === value);
    return option ? { ok: true, value: option.value } : { ok: false, error: 'Please choose one of the options.' };
  }
  const typed = raw.trim().toLowerCase();
  const option = question.options.find((o) => o.value === typed || o.label.toLowerCase() === typed);
  return option ? { ok: true, value: option.value } : { ok: false, error: 'Please choose one of the options.' };
}

function splitOnce(text: string, separator: string): [string, string] {
  const i = text.indexOf(separator);
  return i < 0 ? [text, ''] : [text.slice(0, i), text.slice(i + 1)];
}
