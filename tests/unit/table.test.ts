/** Tables that fit a terminal without cutting an id: fold, drop, then records. */
import { stripVTControlCharacters } from 'node:util';
import { describe, expect, it } from 'vitest';
import { fold, renderTable } from '../../src/cli/output/table.js';

const uuid = (n: number) => `82ad77c3-5fb6-4f01-a${String(n).padStart(3, '0')}-f47fe12864d1`;
const lines = (s: string) => stripVTControlCharacters(s).split('\n');
const head = ['table', 'user_id', 'case_id', 'canonical id', 'detail'];
const rows = Array.from({ length: 5 }, (_, n) => [
  n % 2 ? 'case_memory' : 'case_intake_progress',
  `telegram-user-${n}`,
  uuid(n),
  n === 3 ? uuid(99) : '',
  'no row in mega_agent.cases has this case_id; the intake cannot resume',
]);

describe('renderTable', () => {
  it('at 80 columns: every uuid whole, no line wider, the long detail folded', () => {
    const out = renderTable(head, rows, false, 80);
    for (const line of lines(out)) expect(line.length).toBeLessThanOrEqual(80);
    for (let n = 0; n < 5; n++) expect(out).toContain(uuid(n));
    expect(out).toContain(uuid(99));
    expect(out).not.toContain('…');
    expect(out).toMatch(/no row in/);
  });

  it('at 200 columns: one line per row, nothing folded', () => {
    const out = renderTable(head, rows, false, 200);
    expect(lines(out)).toHaveLength(2 + 1 + 5 + 1); // border, head, border, rows, border
  });

  it('too narrow for the ids side by side: one record per row, ids whole', () => {
    const out = renderTable(['case_id', 'canonical id', 'other id'], [[uuid(1), uuid(2), uuid(3)]], false, 60);
    expect(out).toMatch(/^-\[ RECORD 1 \]/m);
    for (const n of [1, 2, 3]) expect(out).toContain(uuid(n));
    for (const line of lines(out)) expect(line.length).toBeLessThanOrEqual(60);
  });

  it('a pipe gets every character on one line per row', () => {
    const long = 'x'.repeat(500);
    const out = renderTable(['id', 'v'], [[uuid(1), long]], false, Number.POSITIVE_INFINITY);
    expect(out).toContain(long);
  });
});

describe('fold', () => {
  it('breaks at spaces, never inside a uuid, and elides only past six lines', () => {
    expect(fold(`case ${uuid(1)} is missing`, 40)).toEqual(['case', `${uuid(1)} is`, 'missing']);
    const huge = fold('y'.repeat(10_000), 40);
    expect(huge.length).toBeLessThanOrEqual(6);
    expect(huge.join('')).toContain('…');
    for (const l of huge) expect(l.length).toBeLessThanOrEqual(40);
  });
});
