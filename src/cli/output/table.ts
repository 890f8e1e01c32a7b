/**
 * Tables for terminals and plain pipes alike; colour only where the caller allows it. On a
 * terminal a table fits its width: empty columns go, then columns with one value throughout
 * (said once above the table), then the widest cells are elided in the middle. A pipe gets
 * every character.
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

const width = (cell: Cell) => stripVTControlCharacters(String(cell)).length;

/** "abcdefghij" in 7 columns: "abc…hij". Cells with colour are short labels and left alone. */
function elide(cell: Cell, max: number): Cell {
  const text = String(cell);
  if (text.length <= max || text !== stripVTControlCharacters(text)) return cell;
  const keep = max - 1;
  return `${text.slice(0, Math.ceil(keep / 2))}…${text.slice(text.length - Math.floor(keep / 2))}`;
}

/** A line of text within the width (elided in the middle). */
export function fit(text: string, maxWidth: number): string {
  return Number.isFinite(maxWidth) ? String(elide(text, maxWidth)) : text;
}

/** Columns take their content plus 3 (a space each side and a border), plus one border. */
const tableWidth = (widths: number[]) => widths.reduce((n, w) => n + w + 3, 1);

export function renderTable(head: string[], rows: Cell[][], useColor: boolean, maxWidth = terminalWidth()): string {
  const paint = painter(useColor);
  let columns = head.map((_, i) => i);
  const notes: string[] = [];
  const natural = () => columns.map((i) => Math.max(width(head[i]!), ...rows.map((r) => width(r[i] ?? ''))));
  if (Number.isFinite(maxWidth) && tableWidth(natural()) > maxWidth && rows.length > 0) {
    columns = columns.filter((i) => rows.some((r) => String(r[i] ?? '') !== ''));
    if (tableWidth(natural()) > maxWidth && rows.length > 1) {
      const constant = columns.filter((i) => rows.every((r) => String(r[i] ?? '') === String(rows[0]![i] ?? '')));
      for (const i of constant) notes.push(`${head[i]}: ${String(rows[0]![i] ?? '')}`);
      columns = columns.filter((i) => !constant.includes(i));
    }
  }
  const widths = natural();
  if (Number.isFinite(maxWidth)) {
    // Shrink the widest column, one character at a time, until the table fits (8 at least).
    while (tableWidth(widths) > maxWidth) {
      const widest = widths.indexOf(Math.max(...widths));
      if (widths[widest]! <= 8) break;
      widths[widest]!--;
    }
  }
  const table = new Table({
    head: columns.map((i) => paint.bold(head[i]!)),
    style: { head: [], border: [], compact: true },
  });
  for (const row of rows)
    table.push(columns.map((i, k) => elide(typeof row[i] === 'number' ? String(row[i]) : (row[i] ?? ''), widths[k]!)));
  const noted = notes.map((n) => fit(n, maxWidth)).join('\n');
  return noted ? `${noted}\n${table.toString()}` : table.toString();
}
