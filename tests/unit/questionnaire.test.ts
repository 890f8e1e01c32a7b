import { describe, expect, it } from 'vitest';
import {
  QUESTIONNAIRE,
  TOTAL_QUESTIONS,
  nextPosition,
  questionAt,
  questionByKey,
  type TextQuestion,
} from '../../src/core/intake/questionnaire.js';

const text = (key: string) => questionByKey(key) as TextQuestion;

describe('the questionnaire', () => {
  it('has at least 3 blocks and 8 questions, with unique keys, choices and free text', () => {
    expect(QUESTIONNAIRE.length).toBeGreaterThanOrEqual(3);
    expect(TOTAL_QUESTIONS).toBeGreaterThanOrEqual(8);
    const keys = QUESTIONNAIRE.flatMap((b) => b.questions.map((q) => q.key));
    expect(new Set(keys).size).toBe(keys.length);
    expect(keys.some((k) => questionByKey(k)?.kind === 'choice')).toBe(true);
  });

  it('walks every question in order, then ends', () => {
    let at: { blockId: string; step: number } | undefined = { blockId: QUESTIONNAIRE[0]!.id, step: 0 };
    const seen: string[] = [];
    while (at) {
      const q = questionAt(at.blockId, at.step)!;
      seen.push(q.question.key);
      at = nextPosition(q.blockIndex, at.step);
    }
    expect(seen).toEqual(QUESTIONNAIRE.flatMap((b) => b.questions.map((q) => q.key)));
  });

  it('marks the block finished when moving to the next one', () => {
    const first = QUESTIONNAIRE[0]!;
    expect(nextPosition(0, first.questions.length - 1)).toEqual({ blockId: QUESTIONNAIRE[1]!.id, step: 0, finishedBlock: first.id });
  });

  it.each([
    ['email', 'name@example.com', 'name@example.com'],
    ['email', ' Name@Example.COM ', 'name@example.com'],
    ['phone', '+1 (555) 010-2030', '+15550102030'],
    ['incident_date', '2024-02-29', '2024-02-29'],
    ['full_name', '  Ada   Lovelace ', 'Ada Lovelace'],
  ])('accepts a valid %s (%s)', (key, input, value) => {
    expect(text(key).validate(input)).toEqual({ ok: true, value });
  });

  it.each([
    ['email', 'not-an-email'],
    ['email', 'a@b'],
    ['phone', '12'],
    ['incident_date', '2023-02-29'],
    ['incident_date', '15/03/2024'],
    ['incident_date', '2999-01-01'],
    ['full_name', '   '],
    ['description', 'short'],
  ])('rejects an invalid %s (%s) with a message', (key, input) => {
    const result = text(key).validate(input);
    expect(result.ok).toBe(false);
    if (!result.ok) expect(result.error.length).toBeGreaterThan(10);
  });
});
