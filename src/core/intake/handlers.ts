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
import type { Db } from '../db/database.js';
import type { DatabaseShape } from '../db/inspect.js';
import { InternalError } from '../errors.js';
import type { Logger } from '../logger.js';
import { guardCase, type Guarded } from './ensureCase.js';
import { QUESTIONNAIRE, TOTAL_QUESTIONS, nextPosition, questionAt, questionNumber, type Question } from './questionnaire.js';
import { intakeTransaction, type IntakeTx } from './session.js';
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
  /** The database (openDatabase's db; a pool opened with `pipeline: true` sends a call's statements together). */
  db: Db;
  shape: DatabaseShape;
  log: Logger;
  /**
   * Named prepared statements, parsed once per connection (default true). Turn them off behind a
   * transaction pooler that does not keep them (PgBouncer pool_mode=transaction before 1.21).
   */
  preparedStatements?: boolean;
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
  const named = options.preparedStatements ?? true;

  /**
   * Runs fn in a transaction holding the user's lock, with the user's intake in progress as read
   * after the lock (the lock and the read are sent together; the read runs once the lock is held).
   */
  const serial = <T>(userId: string, fn: (tx: IntakeTx, row: store.ProgressRow | undefined) => Promise<T>): Promise<T> =>
    intakeTransaction(db.$client, named, async (tx) => {
      const [, rows] = await Promise.all([tx.run(store.lockUser(userId)), tx.run(store.activeProgress(shape.shape, userId))]);
      return fn(tx, rows[0]);
    });

  /** The guard: the user's intake in progress, its case re-created if it was missing. */
  const withActive = (
    userId: string,
    handler: HandlerName,
    fn: (tx: IntakeTx, g: Extract<Guarded, { kind: 'ok' }>) => Promise<Reply> | Reply,
    none: (tx: IntakeTx) => Promise<Reply> | Reply = () => reply(NO_INTAKE, 'no_intake'),
  ) =>
    serial(userId, async (tx, row) => {
      if (!row) return none(tx);
      const guarded = await guardCase(tx, { row, handler, log });
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

  /** Sends the writes of an answer; the commit waits for them. */
  const answer = (tx: IntakeTx, g: Extract<Guarded, { kind: 'ok' }>, handler: HandlerName, raw: string): Reply => {
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
    if (!next) tx.send(store.setCaseStatus(g.caseId, 'intake_complete'));
    tx.send(
      store.saveAnswer(
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
      ),
    );
    if (next) {
      const nextAt = questionAt(next.blockId, next.step);
      const intro = next.finishedBlock && nextAt ? `Thanks, "${at.block.title}" is done. Next: ${nextAt.block.title}.\n` : 'Saved.\n';
      return {
        ...promptFor(
          QUESTIONNAIRE.findIndex((b) => b.id === next.blockId),
          next.step,
          undefined,
          intro,
        ),
        outcome: 'answered',
      };
    }
    if (shape.hasMemory) {
      tx.send(
        store.insertMemory({
          caseId: g.caseId,
          userId: g.row.user_id,
          kind: 'intake_completed',
          content: { answers: { ...g.row.answers, [question.key]: parsed.value } },
        }),
      );
    }
    if (shape.hasUserContext) tx.send(store.setActiveCase(g.row.user_id, null));
    tx.onCommit(() => log.info({ event: 'intake.completed', user_id: g.row.user_id, case_id: g.caseId, handler }));
    return reply(
      `Thank you, your intake is complete. Your case reference is ${g.caseId}. A member of our team will review your case and contact you.`,
      'completed',
    );
  };

  const cancelIntake = (tx: IntakeTx, g: Extract<Guarded, { kind: 'ok' }>, handler: HandlerName): Reply => {
    // cases first, then progress: the one table order (see answer)
    tx.send(store.setCaseStatus(g.caseId, 'cancelled'));
    tx.send(store.setProgressStatus(g.row, 'cancelled'));
    if (shape.hasUserContext) tx.send(store.setActiveCase(g.row.user_id, null));
    tx.onCommit(() => log.info({ event: 'intake.cancelled', user_id: g.row.user_id, case_id: g.caseId, handler }));
    return reply('Your intake has been cancelled. Send /intake_start whenever you want to begin again.', 'cancelled');
  };

  const repeatQuestion = (g: Extract<Guarded, { kind: 'ok' }>, intro: string): Reply => {
    const at = questionAt(g.row.current_block, g.row.current_step);
    return at ? promptFor(at.blockIndex, g.row.current_step, undefined, intro) : reply('Your intake has no open question.', 'shown');
  };

  return {
    start: (userId) =>
      serial(userId, async (tx, existing) => {
        if (existing) {
          const guarded = await guardCase(tx, { row: existing, handler: 'start', log });
          if (guarded.kind === 'ok') {
            const at = questionAt(existing.current_block, existing.current_step);
            const prompt = at
              ? promptFor(at.blockIndex, existing.current_step, undefined, 'You already have an intake in progress; let us continue.\n')
              : reply(NO_INTAKE, 'shown');
            return { ...prompt, outcome: 'already_in_progress', caseId: guarded.caseId, recovered: guarded.recovered };
          }
        }
        const first = QUESTIONNAIRE[0]!;
        const [created] = await tx.run(
          store.insertCase({ userId, title: store.NEW_CASE_TITLE, status: 'intake', metadata: { source: 'intake' } }),
        );
        const caseId = created?.case_id;
        if (!caseId) throw new InternalError('the case insert returned no id');
        // A damaged intake cannot be continued: close it (after the case: one table order).
        if (existing) tx.send(store.setProgressStatus(existing, 'abandoned'));
        tx.onCommit(() => log.info({ event: 'intake.case_created', user_id: userId, case_id: caseId, handler: 'start' }));
        await options.afterCaseInsert?.(userId, caseId);
        tx.send(store.insertProgress({ userId, caseId, blockId: first.id }));
        if (shape.hasUserContext) tx.send(store.setActiveCase(userId, caseId));
        return {
          ...promptFor(
            0,
            0,
            undefined,
            `Welcome! Let us open your case. There are ${TOTAL_QUESTIONS} questions in ${QUESTIONNAIRE.length} parts; send /intake_cancel to stop at any time.\n${first.title}:\n`,
          ),
          outcome: 'started',
          caseId,
        };
      }),

    status: (userId) =>
      withActive(
        userId,
        'status',
        (_tx, g) => {
          const at = questionAt(g.row.current_block, g.row.current_step);
          const done = g.row.completed_blocks.length;
          if (!at)
            return reply(`Your intake is in progress: no open question; ${done} of ${QUESTIONNAIRE.length} parts complete.`, 'shown');
          const where = `question ${questionNumber(at.blockIndex, g.row.current_step)} of ${TOTAL_QUESTIONS} (${at.block.title})`;
          // The current question again, with its buttons: the user can answer right away.
          return promptFor(
            at.blockIndex,
            g.row.current_step,
            undefined,
            `Your intake is in progress: ${where}; ${done} of ${QUESTIONNAIRE.length} parts complete.\n`,
          );
        },
        async (tx) => {
          const [latest] = await tx.run(store.latestProgress(userId));
          return latest?.status === 'completed'
            ? reply('Your most recent intake is complete. Send /intake_start to begin another one.', 'no_intake')
            : reply(NO_INTAKE, 'no_intake');
        },
      ),

    cancel: (userId) =>
      withActive(userId, 'cancel', (tx, g) => {
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
      withActive(userId, 'resume', (tx, g) => {
        if (shape.hasUserContext) tx.send(store.setActiveCase(userId, g.caseId));
        const at = questionAt(g.row.current_block, g.row.current_step);
        if (!at) return reply('Your intake has no open question.', 'shown');
        return {
          ...promptFor(at.blockIndex, g.row.current_step, undefined, 'Welcome back! Here is where you left off.\n'),
          outcome: 'shown',
        };
      }),

    choice: (userId, data) =>
      withActive(userId, 'choice', (tx, g) => {
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
