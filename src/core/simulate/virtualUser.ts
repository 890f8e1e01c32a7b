/**
 * One virtual user's walk through the intake: the same handlers the bot calls, with answers
 * (some invalid, re-prompted), status checks, a pause and resume, and some users who cancel
 * or abandon midway. Legacy users take the old buggy start and, like the users of the incident,
 * cannot go on.
 */
import { CANCEL_CONFIRM, type IntakeHandlers, type Reply } from '../intake/handlers.js';
import { QUESTIONNAIRE, questionByKey, type Question } from '../intake/questionnaire.js';
import { pick, type Random } from './random.js';

export type UserOutcome = 'completed' | 'cancelled' | 'abandoned' | 'legacy_orphan' | 'crashed' | 'failed';

export interface Timed {
  call<T>(handler: string, fn: () => Promise<T>): Promise<T>;
}

export interface UserPlan {
  legacy: boolean;
  /** A legacy user who comes back later (the ensure-case guard then re-creates the case). */
  returns: boolean;
  crash: boolean;
  /** After how many answers the user cancels or abandons; undefined: completes. */
  stopAfter?: number;
  stopBy?: 'cancel' | 'abandon';
  pauseAfter?: number;
  invalidRate: number;
}

const TOTAL = QUESTIONNAIRE.reduce((n, b) => n + b.questions.length, 0);

export function planUser(random: Random, legacyRate: number, crashRate: number): UserPlan {
  const legacy = random() < legacyRate;
  const crash = random() < crashRate;
  const returns = legacy && random() < 0.5;
  const fate = random();
  const stopAt = 1 + Math.floor(random() * (TOTAL - 1));
  const pauseAfter = random() < 0.3 ? Math.floor(random() * TOTAL) : undefined;
  if (fate < 0.1) return { legacy, crash, stopAfter: stopAt, stopBy: 'cancel', pauseAfter, invalidRate: 0.15, returns };
  if (fate < 0.25) return { legacy, crash, stopAfter: stopAt, stopBy: 'abandon', pauseAfter, invalidRate: 0.15, returns };
  return { legacy, crash, pauseAfter, invalidRate: 0.15, returns };
}

/** A valid answer to a question, and sometimes first an invalid one. */
export function answersFor(question: Question, userNo: number, random: Random, invalidRate: number): string[] {
  const answers: string[] = [];
  if (question.kind === 'choice') {
    if (random() < invalidRate / 2) answers.push(`${question.key}=not-an-option`);
    answers.push(`${question.key}=${pick(random, question.options).value}`);
    return answers;
  }
  const invalid: Record<string, string> = {
    full_name: '   ',
    email: 'not-an-email',
    phone: '12',
    incident_date: '31/02/2024',
    description: 'short',
    opposing_party: '',
  };
  if (random() < invalidRate && invalid[question.key] !== undefined) answers.push(invalid[question.key]!);
  const valid: Record<string, string> = {
    full_name: `Virtual User ${userNo}`,
    email: `user${userNo}@example.com`,
    phone: `+1555${String(1_000_000 + userNo).slice(-7)}`,
    incident_date: `2024-${String(1 + Math.floor(random() * 12)).padStart(2, '0')}-${String(1 + Math.floor(random() * 28)).padStart(2, '0')}`,
    description: pick(random, [
      'My landlord kept the deposit without reason.',
      'I was dismissed after reporting a safety issue.',
      'A seller refuses to refund a faulty car.',
    ]),
    opposing_party: pick(random, ['Acme Ltd', 'Jordan Smith', 'City Housing Co']),
  };
  answers.push(valid[question.key] ?? 'An answer');
  return answers;
}

/** Drives one user; returns what became of them. */
export async function runUser(
  handlers: IntakeHandlers,
  userId: string,
  userNo: number,
  plan: UserPlan,
  random: Random,
  timed: Timed,
  legacyStart: () => Promise<void>,
): Promise<{ outcome: UserOutcome; recoveries: number; reprompts: number }> {
  let recoveries = 0;
  let reprompts = 0;
  const note = (reply: Reply) => {
    if (reply.recovered) recoveries++;
    if (reply.outcome === 'reprompted') reprompts++;
    return reply;
  };
  let reply: Reply;
  if (plan.legacy) {
    // The old start: progress without its case. With the old bot such a user could not go on;
    // with the fixed handlers a returning user is served, the guard re-creating the case.
    await timed.call('legacy_start', legacyStart);
    if (!plan.returns) return { outcome: 'legacy_orphan', recoveries, reprompts };
    reply = note(await timed.call('resume', () => handlers.resume(userId)));
    if (reply.outcome === 'no_intake') return { outcome: 'legacy_orphan', recoveries, reprompts };
  } else {
    reply = note(await timed.call('start', () => handlers.start(userId)));
  }
  let answered = 0;
  for (let guard = 0; guard < TOTAL * 4 && reply.outcome !== 'completed'; guard++) {
    if (plan.stopAfter !== undefined && answered >= plan.stopAfter) {
      if (plan.stopBy === 'cancel') {
        const asked = note(await timed.call('cancel', () => handlers.cancel(userId)));
        // With answers given, the bot asks first: the user presses "Yes, cancel it".
        if (asked.outcome === 'confirm_cancel') note(await timed.call('choice', () => handlers.choice(userId, CANCEL_CONFIRM)));
        return { outcome: 'cancelled', recoveries, reprompts };
      }
      return { outcome: 'abandoned', recoveries, reprompts };
    }
    if (plan.pauseAfter === answered) {
      note(await timed.call('status', () => handlers.status(userId)));
      note(await timed.call('resume', () => handlers.resume(userId)));
      plan.pauseAfter = undefined;
    }
    const status = reply.question ? questionByKey(reply.question.key) : undefined;
    if (!status) break;
    for (const answer of answersFor(status, userNo, random, plan.invalidRate)) {
      const handler = status.kind === 'choice' ? 'choice' : 'text';
      reply = note(
        await timed.call(handler, () => (handler === 'choice' ? handlers.choice(userId, answer) : handlers.text(userId, answer))),
      );
    }
    answered++;
  }
  return { outcome: reply.outcome === 'completed' ? 'completed' : 'failed', recoveries, reprompts };
}
