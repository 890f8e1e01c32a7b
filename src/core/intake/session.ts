/**
 * One handler call's transaction: a pooled connection, BEGIN, the intake's statements, COMMIT.
 *
 * Two things make it cheap, both kept where they are safe:
 * - named statements: the server parses and plans each once per connection. Behind a
 *   transaction pooler a name may not reach the connection it was made on, so the caller turns
 *   them off there (see IntakeOptions.preparedStatements).
 * - pipelining, where the pool was opened with `pipeline: true`: a statement goes out without
 *   waiting for the answer to the one before. BEGIN, the user's lock and the read travel
 *   together, and so do the writes and COMMIT. The server still runs them one after another in
 *   the order they were sent, each with its own snapshot. On a pool that does not pipeline the
 *   same calls run one at a time.
 */
import type pg from 'pg';
import { detectTransactionPooling } from '../db/locks.js';
import type { BoundStatement, SqlRunner } from '../db/statement.js';

export interface IntakeTx extends SqlRunner {
  /**
   * Sends a write and returns at once (in order with everything sent before it): the commit
   * waits for it, and its failure fails the call and rolls the transaction back.
   */
  send(statement: BoundStatement<unknown>): void;
  /** Runs once the transaction has committed (a log line that must not claim a rolled-back change). */
  onCommit(callback: () => void): void;
}

/** Runs fn in a transaction on one connection of the pool; commits what it sent, or rolls it all back. */
export async function intakeTransaction<T>(pool: pg.Pool, named: boolean, fn: (tx: IntakeTx) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  const { pipeline: pipelined, connection } = client as pg.PoolClient & pg.Client;
  let tail: Promise<unknown> = Promise.resolve();
  const sent: Promise<unknown>[] = [];
  const committed: Array<() => void> = [];
  let corked = false;
  const query = (config: pg.QueryConfig): Promise<pg.QueryResult> => {
    if (pipelined && !corked) {
      // pg writes each statement to the socket on its own; everything sent in one tick (BEGIN,
      // the lock and the read; the writes and COMMIT) goes out in one write instead.
      corked = true;
      connection.stream.cork();
      process.nextTick(() => {
        corked = false;
        connection.stream.uncork();
      });
    }
    const result = pipelined ? client.query(config) : tail.then(() => client.query(config));
    // Every promise is watched from the start: one nobody awaits (a write after a failed read)
    // must not be an unhandled rejection; its failure is read from `sent`.
    tail = result.catch(() => undefined);
    sent.push(result);
    return result;
  };
  const tx: IntakeTx = {
    run: async <R>(statement: BoundStatement<R>) => (await query(statement.config(named))).rows as R[],
    send: (statement) => void query(statement.config(named)),
    onCommit: (callback) => void committed.push(callback),
  };
  let broken = false;
  let result: T;
  try {
    void query({ text: 'BEGIN' });
    result = await fn(tx);
    void query({ text: 'COMMIT' });
    const outcomes = await Promise.allSettled(sent);
    const failure = outcomes.find((o): o is PromiseRejectedResult => o.status === 'rejected');
    if (failure) throw failure.reason;
  } catch (error) {
    await Promise.allSettled(sent);
    // After a failed COMMIT (or a failed write before it) there is nothing to roll back; a
    // ROLLBACK then only warns. A connection that cannot even do that is not given back.
    await client.query('ROLLBACK').catch(() => {
      broken = true;
    });
    throw error;
  } finally {
    client.release(broken);
  }
  for (const callback of committed) callback();
  return result;
}

/**
 * Whether named prepared statements stay on the connection they were made on: not behind a
 * transaction pooler, where the next transaction may run on another server connection.
 */
export async function keepsPreparedStatements(pool: pg.Pool): Promise<boolean> {
  const client = await pool.connect();
  try {
    return !(await detectTransactionPooling(pool, client));
  } finally {
    client.release();
  }
}
