/**
 * Tables for terminals and plain pipes alike; colour only where the caller allows it. On a
 * terminal a table fits its width without ever cutting an id: empty columns go, then columns
 * with one value throughout (said once above the table), then the widest text is folded onto
 * more lines; where even that does not fit, each row becomes a record of its own (like psql's
 * `\x auto`). A uuid and a number are never broken; only a cell past FOLD_LINES lines is elided
 * in the middle. A pipe gets every character.
 */
import { stripVTControlCharacters } from 'node:util';
import { Chalk, type ChalkInstance } from 'chalk';
import Table from 'cli-table3';

export function painter(useColor: boolean): ChalkInstance {
  return new Chalk({ level: useColor ? 1 : 0 });
}

/** The width tables must fit: the terminal's, when stdout is one; else unlimited. */
export function terminalWidth(stream: NodeJS.WriteStream = process.stdout): number {
  return stream.isTTY && stream.columns ? stream.columns : Number.POSITIVE_INFINITY;
}

type Cell = string | number;

/** The most lines a folded cell takes; a value longer than that (a hostile 10 kB id) is elided. */
const FOLD_LINES = 6;
/** The narrowest a folded column gets. */
const MIN_FOLD = 8;
/** What is never broken: uuids, and numbers. */
const WHOLE = /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|^-?[\d.,]+$/gi;

const width = (cell: Cell) => stripVTControlCharacters(String(cell)).length;
/** Cells with colour are short labels: shown as they are. */
const coloured = (text: string) => text !== stripVTControlCharacters(text);

/** "abcdefghij" in 7 columns: "abc…hij". */
function elide(text: string, max: number): string {
  if (text.length <= max || coloured(text)) return text;
  const keep = max - 1;
  return `${text.slice(0, Math.ceil(keep / 2))}…${text.slice(text.length - Math.floor(keep / 2))}`;
}

/** A line of text within the width: folded onto more lines where it is longer. */
export function fit(text: string, maxWidth: number): string {
  return Number.isFinite(maxWidth) ? fold(text, maxWidth).join('\n') : text;
}

/** A sentence for stdout: folded at the terminal's width, whole on a pipe. */
export function prose(text: string, maxWidth = terminalWidth()): string {
  return fit(text, maxWidth);
}

/** A name, a timestamp, a short id: one word that folding would only make harder to read. */
const WORD = 24;

/** The narrowest a cell can be folded to: a short word whole, else its longest uuid or number, else MIN_FOLD. */
function unbreakable(cell: Cell): number {
  const text = String(cell);
  if (coloured(text) || (text.length <= WORD && !/\s/.test(text))) return width(text);
  return Math.max(Math.min(MIN_FOLD, text.length), ...(text.match(WHOLE) ?? []).map((m) => m.length));
}

/**
 * Text folded into lines of at most `max`: at spaces where it can, else anywhere but inside a
 * uuid or number. Past FOLD_LINES lines the middle is elided.
 */
export function fold(text: string, max: number): string[] {
  if (text.length <= max || coloured(text)) return [text];
  // pieces that must stay whole, and the text between them
  const pieces: string[] = [];
  let at = 0;
  for (const m of text.matchAll(WHOLE)) {
    if (m.index > at) pieces.push(...text.slice(at, m.index).split(/(?<= )/));
    pieces.push(m[0]);
    at = m.index + m[0].length;
  }
  if (at < text.length) pieces.push(...text.slice(at).split(/(?<= )/));
  const lines: string[] = [];
  let line = '';
  for (let piece of pieces) {
    const whole = new RegExp(`^(?:${WHOLE.source})$`, 'i').test(piece);
    while (line.length + piece.length > max) {
      if (line.trimEnd().length > 0 && (whole || piece.length <= max)) {
        lines.push(line.trimEnd());
        line = '';
        continue;
      }
      if (whole) break;
      lines.push(line + piece.slice(0, max - line.length));
      piece = piece.slice(max - line.length);
      line = '';
    }
    line += piece;
  }
  if (line.trimEnd()) lines.push(line.trimEnd());
  if (lines.length <= FOLD_LINES) return lines;
  return [
    ...lines.slice(0, FOLD_LINES / 2 - 1),
    elide(lines.slice(FOLD_LINES / 2 - 1, -(FOLD_LINES / 2 - 1)).join(''), max),
    ...lines.slice(-(FOLD_LINES / 2 - 1)),
  ];
}

/** Columns take their content plus 3 (a space each side and a border), plus one border. */
const tableWidth = (widths: number[]) => widths.reduce((n, w) => n + w + 3, 1);

export function renderTable(head: string[], rows: Cell[][], useColor: boolean, maxWidth = terminalWidth()): string {
  const paint = painter(useColor);
  let columns = head.map((_, i) => i);
  const notes: string[] = [];
  const text = (r: Cell[], i: number) => (typeof r[i] === 'number' ? String(r[i]) : String(r[i] ?? ''));
  const natural = () => columns.map((i) => Math.max(width(head[i]!), ...rows.map((r) => width(text(r, i)))));
  if (Number.isFinite(maxWidth) && tableWidth(natural()) > maxWidth && rows.length > 0) {
    columns = columns.filter((i) => rows.some((r) => text(r, i) !== ''));
    if (tableWidth(natural()) > maxWidth && rows.length > 1) {
      const constant = columns.filter((i) => rows.every((r) => text(r, i) === text(rows[0]!, i)));
      for (const i of constant) notes.push(`${head[i]}: ${text(rows[0]!, i)}`);
      columns = columns.filter((i) => !constant.includes(i));
    }
  }
  const noted = notes.map((n) => fit(n, maxWidth)).join('\n');
  const widths = natural();
  if (Number.isFinite(maxWidth) && tableWidth(widths) > maxWidth) {
    const floor = columns.map((i) => Math.max(...rows.map((r) => unbreakable(text(r, i))), Math.min(MIN_FOLD, width(head[i]!))));
    // Fold the widest text, one character at a time, until the table fits.
    while (tableWidth(widths) > maxWidth) {
      const widest = widths.reduce((best, w, k) => (w > floor[k]! && (best < 0 || w > widths[best]!) ? k : best), -1);
      if (widest < 0) break;
      widths[widest]!--;
    }
    if (tableWidth(widths) > maxWidth) {
      const records = renderRecords(
        columns.map((i) => head[i]!),
        rows.map((r) => columns.map((i) => text(r, i))),
        paint,
        maxWidth,
      );
      return noted ? `${noted}\n${records}` : records;
    }
  }
  const table = new Table({
    head: columns.map((i, k) => paint.bold(fold(head[i]!, widths[k]!).join('\n'))),
    style: { head: [], border: [], compact: true },
  });
  for (const row of rows) table.push(columns.map((i, k) => fold(text(row, i), widths[k]!).join('\n')));
  return noted ? `${noted}\n${table.toString()}` : table.toString();
}

/** One record per row: "-[ RECORD 1 ]---" and then "column | value" (empty ones left out), values folded to the width. */
function renderRecords(head: string[], rows: string[][], paint: ChalkInstance, maxWidth: number): string {
  const key = Math.max(...head.map((h) => h.length));
  const valueWidth = Math.max(MIN_FOLD, maxWidth - key - 3);
  const out: string[] = [];
  rows.forEach((row, n) => {
    const title = `-[ RECORD ${n + 1} ]`;
    out.push(paint.bold(title + '-'.repeat(Math.max(0, Math.min(maxWidth, key + 3 + 20) - title.length))));
    row.forEach((value, k) => {
      if (value === '') return; // a record shows what the row has
      const lines = fold(value, valueWidth);
      lines.forEach((line, j) => out.push(`${(j === 0 ? head[k]! : '').padEnd(key)} | ${line}`));
    });
  });
  return out.join('\n');
}
