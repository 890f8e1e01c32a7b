/**
 * Statements of the row-at-a-time paths (the intake): written once with Drizzle, the query
 * builder where it can say it and the `sql` tag where it cannot, every table and column named
 * through the table objects (a rename in the schema is a type error here), and compiled once.
 *
 * A statement runs in one of two ways, with the same text:
 * - on a pg client, by name: the server parses and plans it once per connection (a named
 *   prepared statement), or unnamed where names cannot be kept (a transaction pooler);
 * - through any Drizzle executor (the application's own transaction), with its values bound.
 */
import { fillPlaceholders, sql, type Placeholder, type SQL, type SQLWrapper } from 'drizzle-orm';
import { PgDialect, type PgTable } from 'drizzle-orm/pg-core';
import type pg from 'pg';
import type { Executor } from './database.js';

const dialect = new PgDialect();

/** A row as the driver returns it: a table's columns by their SQL names, typed from the schema. */
export type RowOf<T extends PgTable> = {
  -readonly [K in keyof T['_']['columns'] as T['_']['columns'][K]['_']['name']]: T['_']['columns'][K]['_']['notNull'] extends true
    ? T['_']['columns'][K]['_']['data']
    : T['_']['columns'][K]['_']['data'] | null;
};

/** A statement's values, or the placeholders it is compiled with. */
export type Bindings<V> = { [K in keyof V]: V[K] | Placeholder };

export class Statement<V extends Record<string, unknown>, R> {
  private compiled?: { text: string; params: unknown[] };

  /**
   * @param name the prepared statement's name on the server (prefixed with caseguard_)
   * @param keys the names of its values
   * @param build the statement for given values; called once with placeholders to compile it
   */
  constructor(
    readonly name: string,
    private readonly keys: ReadonlyArray<keyof V & string>,
    private readonly build: (values: Bindings<V>) => SQLWrapper,
  ) {}

  /** The statement with these values, to run or send. */
  with(values: V): BoundStatement<R> {
    return { sql: () => this.build(values).getSQL(), config: (named) => this.config(values, named) };
  }

  private config(values: V, named: boolean): pg.QueryConfig {
    this.compiled ??= (() => {
      const placeholders = Object.fromEntries(this.keys.map((key) => [key, sql.placeholder(key)])) as Bindings<V>;
      const query = dialect.sqlToQuery(this.build(placeholders).getSQL());
      return { text: query.sql, params: query.params };
    })();
    return {
      name: named ? `caseguard_${this.name}` : undefined,
      text: this.compiled.text,
      values: fillPlaceholders(this.compiled.params, values),
    };
  }
}

/** A statement with its values, returning rows of type R. */
export interface BoundStatement<R> {
  /** With the values bound, for a Drizzle executor. */
  sql(): SQL;
  /** The query config for pg: the compiled text, the values in order, and the name when named. */
  config(named: boolean): pg.QueryConfig;
  /** Never set: carries the row type. */
  readonly row?: R;
}

/** Runs statements: on a pg client (the intake's own transactions) or through a Drizzle executor. */
export interface SqlRunner {
  run<R>(statement: BoundStatement<R>): Promise<R[]>;
}

/** A runner over a Drizzle executor: the application's database or transaction. */
export function drizzleRunner(executor: Executor): SqlRunner {
  return {
    async run<R>(statement: BoundStatement<R>): Promise<R[]> {
      const result = await executor.execute(statement.sql());
      return result.rows as R[];
    },
  };
}

/**
 * Values for an update's set(): Drizzle binds a placeholder there like a value, with the column's
 * encoder (mapUpdateSet), though its types admit placeholders only in inserts and conditions.
 */
export function settable<T extends Record<string, unknown>>(values: T): { [K in keyof T]: Exclude<T[K], Placeholder> } {
  return values as { [K in keyof T]: Exclude<T[K], Placeholder> };
}
