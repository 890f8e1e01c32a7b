import { CommanderError } from 'commander';
import { describe, expect, it } from 'vitest';
import { reportError } from '../../src/cli/errors.js';
import { BusyError, ConnectionError, ExitCode, SchemaError, UsageError, toError } from '../../src/core/errors.js';

function capture() {
  let text = '';
  return { stream: { write: (s: string) => ((text += s), true) } as unknown as NodeJS.WritableStream, text: () => text };
}

describe('the top-level error handler', () => {
  it.each([
    [new UsageError('bad flag'), ExitCode.usage],
    [new ConnectionError('cannot connect'), ExitCode.connection],
    [new SchemaError('missing table'), ExitCode.schema],
    [new BusyError('held'), ExitCode.busy],
  ])('prints one line without a stack for %s', (error, code) => {
    const out = capture();
    expect(reportError(error, out.stream)).toBe(code);
    expect(out.text()).toBe(`caseguard: ${error.message}\n`);
  });

  it('prints a stack for an internal error and exits 70', () => {
    const out = capture();
    expect(reportError(new TypeError('boom'), out.stream)).toBe(70);
    expect(out.text()).toContain('internal error');
    expect(out.text()).toMatch(/at .+\(/);
  });

  it('a missing privilege is one line, exit 3, with the server\'s message', () => {
    const out = capture();
    const denied = Object.assign(new Error('permission denied for schema caseguard'), { code: '42501' });
    expect(reportError(new Error('Failed query: ...', { cause: denied }), out.stream)).toBe(3);
    expect(out.text()).toBe('caseguard: the database user lacks a privilege this command needs: permission denied for schema caseguard (SQLSTATE 42501)\n');
  });

  it('maps commander usage errors to 2 and help to 0', () => {
    const out = capture();
    expect(reportError(new CommanderError(1, 'commander.unknownOption', 'x'), out.stream)).toBe(2);
    expect(reportError(new CommanderError(0, 'commander.helpDisplayed', 'x'), out.stream)).toBe(0);
    expect(reportError(new CommanderError(1, 'commander.help', 'x'), out.stream)).toBe(2);
  });

  it('coerces thrown non-errors, keeping the cause', () => {
    const error = toError({ weird: true });
    expect(error).toBeInstanceOf(Error);
    expect(error.cause).toEqual({ weird: true });
  });
});
