/** A logger that records every event, for asserting on log events. */
import type { Logger } from '../../src/core/logger.js';

export interface RecordedEvent {
  level: 'debug' | 'info' | 'warn' | 'error';
  fields: Record<string, unknown>;
  msg?: string;
}

export function recordingLogger(
  events: RecordedEvent[] = [],
  bindings: Record<string, unknown> = {},
): Logger & { events: RecordedEvent[] } {
  const at = (level: RecordedEvent['level']) => (objOrMsg: object | string, msg?: string) => {
    if (typeof objOrMsg === 'string') events.push({ level, fields: { ...bindings }, msg: objOrMsg });
    else events.push({ level, fields: { ...bindings, ...(objOrMsg as Record<string, unknown>) }, msg });
  };
  return {
    events,
    debug: at('debug'),
    info: at('info'),
    warn: at('warn'),
    error: at('error'),
    child: (more) => recordingLogger(events, { ...bindings, ...more }),
  };
}
