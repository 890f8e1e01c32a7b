/** Tables for terminals and plain pipes alike; colour only where the caller allows it. */
import { Chalk, type ChalkInstance } from 'chalk';
import Table from 'cli-table3';

export function painter(useColor: boolean): ChalkInstance {
  return new Chalk({ level: useColor ? 1 : 0 });
}

export function renderTable(head: string[], rows: Array<Array<string | number>>, useColor: boolean): string {
  const paint = painter(useColor);
  const table = new Table({
    head: head.map((h) => paint.bold(h)),
    style: { head: [], border: [], compact: true },
  });
  for (const row of rows) table.push(row.map((cell) => (typeof cell === 'number' ? String(cell) : cell)));
  return table.toString();
}
