/**
 * The intake questionnaire, held as data: blocks of questions, answered in order. Free-text
 * answers are validated; an invalid answer gets a re-prompt and changes nothing. Choice
 * questions are answered with buttons.
 */

export type Validation = { ok: true; value: string } | { ok: false; error: string };

export interface TextQuestion {
  kind: 'text';
  key: string;
  prompt: string;
  validate(input: string): Validation;
}

export interface ChoiceQuestion {
  kind: 'choice';
  key: string;
  prompt: string;
  options: ReadonlyArray<{ value: string; label: string }>;
}

export type Question = TextQuestion | ChoiceQuestion;

export interface Block {
  id: string;
  title: string;
  questions: readonly Question[];
}

const nonEmpty =
  (what: string, max = 200) =>
  (input: string): Validation => {
    const value = input.trim().replace(/\s+/g, ' ');
    if (value === '') return { ok: false, error: `Please enter ${what}.` };
    if (value.length > max) return { ok: false, error: `Please keep ${what} under ${max} characters.` };
    return { ok: true, value };
  };

const email = (input: string): Validation => {
  const value = input.trim();
  // Deliberately simple: one @, a dot in the domain, no spaces.
  if (!/^[^\s@]+@[^\s@]+\.[^\s@]{2,}$/.test(value) || value.length > 254) {
    return { ok: false, error: 'That does not look like an email address (like name@example.com).' };
  }
  return { ok: true, value: value.toLowerCase() };
};

const phone = (input: string): Validation => {
  const value = input.trim();
  const digits = value.replace(/[\s().-]/g, '');
  if (!/^\+?\d{7,15}$/.test(digits)) {
    return { ok: false, error: 'Please enter a phone number of 7 to 15 digits, optionally starting with +.' };
  }
  return { ok: true, value: digits };
};

/** A calendar date YYYY-MM-DD, not in the future. */
const pastDate = (input: string): Validation => {
  const value = input.trim();
  const match = /^(\d{4})-(\d{2})-(\d{2})$/.exec(value);
  const date = match ? new Date(Date.UTC(Number(match[1]), Number(match[2]) - 1, Number(match[3]))) : undefined;
  if (!match || !date || date.toISOString().slice(0, 10) !== value) {
    return { ok: false, error: 'Please enter the date as YYYY-MM-DD, for example 2024-03-15.' };
  }
  if (date.getTime() > Date.now()) return { ok: false, error: 'That date is in the future; please enter when it happened.' };
  if (Number(match[1]) < 1900) return { ok: false, error: 'Please enter a date after 1900.' };
  return { ok: true, value };
};

const description = (input: string): Validation => {
  const value = input.trim();
  if (value.length < 10) return { ok: false, error: 'Please describe what happened in at least a sentence (10 characters or more).' };
  if (value.length > 4000) return { ok: false, error: 'Please keep the description under 4000 characters.' };
  return { ok: true, value };
};

export const QUESTIONNAIRE: readonly Block[] = [
  {
    id: 'contact',
    title: 'Contact details',
    questions: [
      { kind: 'text', key: 'full_name', prompt: 'What is your full name?', validate: nonEmpty('your name', 120) },
      { kind: 'text', key: 'email', prompt: 'What email address can we reach you at?', validate: email },
      { kind: 'text', key: 'phone', prompt: 'What phone number can we call you on?', validate: phone },
      {
        kind: 'choice',
        key: 'contact_preference',
        prompt: 'How do you prefer to be contacted?',
        options: [
          { value: 'email', label: 'Email' },
          { value: 'phone', label: 'Phone' },
          { value: 'chat', label: 'This chat' },
        ],
      },
    ],
  },
  {
    id: 'matter',
    title: 'Your matter',
    questions: [
      {
        kind: 'choice',
        key: 'case_type',
        prompt: 'What kind of matter is it?',
        options: [
          { value: 'employment', label: 'Employment' },
          { value: 'housing', label: 'Housing' },
          { value: 'family', label: 'Family' },
          { value: 'consumer', label: 'Consumer' },
          { value: 'other', label: 'Something else' },
        ],
      },
      { kind: 'text', key: 'incident_date', prompt: 'When did it happen? (YYYY-MM-DD)', validate: pastDate },
      { kind: 'text', key: 'description', prompt: 'Briefly, what happened?', validate: description },
    ],
  },
  {
    id: 'parties',
    title: 'Other parties',
    questions: [
      {
        kind: 'text',
        key: 'opposing_party',
        prompt: 'Who is the other party (a person or an organisation)?',
        validate: nonEmpty('a name'),
      },
      {
        kind: 'choice',
        key: 'has_lawyer',
        prompt: 'Has anyone else already given you legal advice on this?',
        options: [
          { value: 'yes', label: 'Yes' },
          { value: 'no', label: 'No' },
        ],
      },
      {
        kind: 'choice',
        key: 'urgency',
        prompt: 'How urgent is it? Is there a deadline soon?',
        options: [
          { value: 'high', label: 'Deadline within 2 weeks' },
          { value: 'medium', label: 'Within 3 months' },
          { value: 'low', label: 'No deadline I know of' },
        ],
      },
    ],
  },
];

export const TOTAL_QUESTIONS = QUESTIONNAIRE.reduce((n, b) => n + b.questions.length, 0);

export interface Position {
  blockIndex: number;
  step: number;
}

/** The question at a progress row's position (current_block, current_step), if any. */
export function questionAt(blockId: string | null, step: number): { block: Block; blockIndex: number; question: Question } | undefined {
  const blockIndex = QUESTIONNAIRE.findIndex((b) => b.id === blockId);
  const block = QUESTIONNAIRE[blockIndex];
  const question = block?.questions[step];
  return block && question ? { block, blockIndex, question } : undefined;
}

/** The position after answering the question at (blockIndex, step); undefined when the questionnaire is done. */
export function nextPosition(blockIndex: number, step: number): { blockId: string; step: number; finishedBlock?: string } | undefined {
  const block = QUESTIONNAIRE[blockIndex];
  if (!block) return undefined;
  if (step + 1 < block.questions.length) return { blockId: block.id, step: step + 1 };
  const next = QUESTIONNAIRE[blockIndex + 1];
  return next ? { blockId: next.id, step: 0, finishedBlock: block.id } : undefined;
}

/** How many questions come before this position (for "question 4 of 10"). */
export function questionNumber(blockIndex: number, step: number): number {
  return QUESTIONNAIRE.slice(0, blockIndex).reduce((n, b) => n + b.questions.length, 0) + step + 1;
}

/** A question by its key. */
export function questionByKey(key: string): Question | undefined {
  for (const block of QUESTIONNAIRE) {
    const question = block.questions.find((q) => q.key === key);
    if (question) return question;
  }
  return undefined;
}
