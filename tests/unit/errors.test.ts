import { CommanderError } from 'commander';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { reportError } from '../../src/cli/errors.js';
import { BusyError, ConnectionError, ExitCode, SchemaError, UsageError, toError } from '../../src/core/errors.js';
import { expectedServerError } from '../../src/core/db/sqlstate.js';

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

  it("a missing privilege is one line, exit 3, with the server's message", () => {
    const out = capture();
    const denied = serverError('permission denied for schema caseguard', '42501');
    expect(reportError(new Error('Failed query: ...', { cause: denied }), out.stream)).toBe(3);
    expect(out.text()).toBe(
      'caseguard: the database user lacks a privilege this command needs: permission denied for schema caseguard (SQLSTATE 42501); grant it, or run as a role that has it\n',
    );
  });

  it.each([
    ['08006', 3],
    ['28P01', 3],
    ['3D000', 3],
    ['53300', 3],
    ['57P01', 3],
    ['42501', 3],
    ['25006', 2],
    ['42P01', 4],
    ['42703', 4],
    ['42883', 4],
    ['0A000', 4],
    ['2BP01', 4],
    ['23502', 4],
    ['23505', 4],
    ['P0001', 4],
    ['55P03', 5],
    ['57014', 5],
    ['40001', 5],
    ['40P01', 5],
    ['53100', 5],
  ])('SQLSTATE %s is one line with exit %i, never the parameters or row values', (code, exit) => {
    const out = capture();
    // A dependency error's detail names schema objects and is shown; any other detail may hold row values.
    const detail = code === '2BP01' ? 'view mega_agent.v depends on column case_id' : 'Key (user_id)=(alice@example.com) already exists.';
    const server = serverError('the server said so', code, detail);
    const wrapped = new Error('Failed query: insert into t values ($1)\nparams: alice@example.com,my answer', { cause: server });
    expect(reportError(wrapped, out.stream)).toBe(exit);
    expect(out.text().trim().split('\n')).toHaveLength(1);
    expect(out.text()).toContain(`SQLSTATE ${code}`);
    expect(out.text()).not.toMatch(/alice|my answer|at .+\(/);
    if (code === '2BP01') expect(out.text()).toContain('view mega_agent.v depends on column case_id');
  });

  it("a genuine bug shows frames but never drizzle's parameters", () => {
    const out = capture();
    const server = serverError('syntax error at or near "x"', '42601');
    const wrapped = new Error('Failed query: select x\nparams: alice@example.com', { cause: server });
    expect(reportError(wrapped, out.stream)).toBe(70);
    expect(out.text()).toContain('internal error: syntax error at or near "x" (SQLSTATE 42601)');
    expect(out.text()).toMatch(/at .+/);
    expect(out.text()).not.toContain('alice');
    const plain = capture();
    expect(reportError(new Error('Failed query: select 1\nparams: alice@example.com'), plain.stream)).toBe(70);
    expect(plain.text()).not.toContain('alice');
  });

  it('a file-system errno is no SQLSTATE: cannot write, exit 2', () => {
    const out = capture();
    const eisdir = Object.assign(new Error("EISDIR: illegal operation on a directory, open '/tmp'"), {
      code: 'EISDIR',
      errno: -21,
      syscall: 'open',
      path: '/tmp',
    });
    expect(reportError(eisdir, out.stream)).toBe(2);
    expect(out.text()).toBe('caseguard: cannot write /tmp: EISDIR\n');
    expect(out.text()).not.toContain('SQLSTATE');
  });

  it('maps commander usage errors to 2 and help to 0', () => {
    const out = capture();
    expect(reportError(new CommanderError(1, 'commander.unknownOption', 'x'), out.stream)).toBe(2);
    expect(reportError(new CommanderError(0, 'commander.helpDisplayed', 'x'), out.stream)).toBe(0);
    expect(reportError(new CommanderError(1, 'commander.help', 'x'), out.stream)).toBe(2);
  });

  it("a rejected write on caseguard's own tables says so, and never blames the application", () => {
    const own = serverError('duplicate key value violates unique constraint "runs_pkey"', '23505', 'Key (run_id)=(7) already exists.');
    own.schema = 'caseguard';
    own.table = 'runs';
    own.constraint = 'runs_pkey';
    const out = capture();
    expect(reportError(own, out.stream)).toBe(4);
    expect(out.text()).toMatch(/caseguard's own table caseguard\.runs rejected a write.*not the application's constraint/);
    expect(out.text()).not.toMatch(/\(7\)/);
    const app = serverError('new row violates check constraint "short_title"', '23514');
    app.schema = 'mega_agent';
    app.table = 'cases';
    expect(reportError(app, capture().stream)).toBe(4);
    expect(expectedServerError(app)?.message).toMatch(/the application's constraint or trigger rejected a write/);
  });

  it('coerces thrown non-errors, keeping the cause', () => {
    const error = toError({ weird: true });
    expect(error).toBeInstanceOf(Error);
    expect(error.cause).toEqual({ weird: true });
  });
});

function serverError(message: string, code: string, detail?: string): pg.DatabaseError {
  const error = new pg.DatabaseError(message, 0, 'error');
  error.severity = 'ERROR'; // as every error the server sends
  error.code = code;
  error.detail = detail;
  return error;
}
