/**
 * A log line on a terminal reads like a sentence: the message, then only the fields it does not
 * already say, dimmed (`key=value`). An event logged without a message is named by its event.
 * Off a terminal the JSON lines are the interface and keep every field.
 */
import type { MessageFormatFunc } from 'pino-pretty';

/** Fields every line has, or that only a machine needs. */
const HIDDEN = new Set(['level', 'time', 'pid', 'hostname', 'msg', 'event']);

const shown = (value: unknown) =>
  typeof value === 'string' ? (/^[^\s"=]+$/.test(value) ? value : JSON.stringify(value)) : JSON.stringify(value);

export const terminalMessage: MessageFormatFunc = (log, messageKey, _level, { colors }) => {
  const message = typeof log[messageKey] === 'string' && log[messageKey] !== '' ? (log[messageKey] as string) : String(log.event ?? '');
  const extras: string[] = [];
  for (const [key, value] of Object.entries(log)) {
    if (HIDDEN.has(key) || key === messageKey || value === undefined) continue;
    const text = typeof value === 'object' && value !== null ? JSON.stringify(value) : String(value);
    if (text !== '' && message.includes(text)) continue; // the message says it already
    extras.push(`${key}=${shown(value)}`);
  }
  return extras.length > 0 ? `${message} ${colors.dim(extras.join(' '))}` : message;
};
