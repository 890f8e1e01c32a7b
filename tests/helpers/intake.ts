/** Drives the intake handlers with valid answers, for tests. */
import type { IntakeHandlers, Reply } from '../../src/core/intake/handlers.js';
import { questionByKey } from '../../src/core/intake/questionnaire.js';

export const VALID_ANSWERS: Record<string, string> = {
  full_name: 'Ada Lovelace',
  email: 'ada@example.com',
  phone: '+44 20 7946 0000',
  contact_preference: 'email',
  case_type: 'employment',
  incident_date: '2024-03-15',
  description: 'I was dismissed after reporting a safety issue.',
  opposing_party: 'Acme Ltd',
  has_lawyer: 'no',
  urgency: 'medium',
};

/** Answers the question a reply asks, by button for choices and by text otherwise. */
export function answer(handlers: IntakeHandlers, userId: string, reply: Reply): Promise<Reply> {
  const key = reply.question?.key;
  if (!key) throw new Error(`reply asks no question: ${reply.text}`);
  const question = questionByKey(key)!;
  const value = VALID_ANSWERS[key]!;
  return question.kind === 'choice' ? handlers.choice(userId, `${key}=${value}`) : handlers.text(userId, value);
}

/** Starts (or continues) and answers everything. */
export async function completeIntake(handlers: IntakeHandlers, userId: string, from?: Reply): Promise<Reply> {
  let reply = from ?? (await handlers.start(userId));
  for (let i = 0; i < 50 && reply.outcome !== 'completed'; i++) reply = await answer(handlers, userId, reply);
  return reply;
}
