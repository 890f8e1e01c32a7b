/**
 * The steps of `fk add` for one reference, as data: the SQL each runs, the lock it takes (as the
 * PostgreSQL ALTER TABLE documentation states it), what waits meanwhile, and how to tell it is
 * done (in TypeScript for fk add, in SQL for the psql script).
 *
 * online (default): a uuid shadow column kept in sync by a trigger, backfilled in keyset
 * batches, proven NOT NULL by a validated CHECK (so SET NOT NULL skips its scan), for progress a
 * unique index built CONCURRENTLY, then one short swap (progress: the primary key attached again
 * USING that index). rewrite: ALTER COLUMN TYPE ... USING, one ACCESS EXCLUSIVE rewrite; fine for
 * small tables. Both then build the index on the column CONCURRENTLY, add the FK NOT VALID, and
 * VALIDATE it apart.
 */
import pg from 'pg';
import { carriedIndexName, type Dependent } from './dependents.js';
import { quoted, type Reference, type Strategy } from './names.js';
import type { FkState } from './state.js';

export type { Strategy } from './names.js';

export interface FkStep {
  /** "<reference>.<step>", e.g. progress.swap. */
  id: string;
  title: string;
  /** How the step runs: one transaction, outside any (CONCURRENTLY), or keyset batches. */
  mode: 'transaction' | 'concurrent' | 'batches';
  lock: string;
  effect: string;
  statements: string[];
  /** squawk rules this step breaks on purpose, by statement index, with the reason. */
  suppress?: Record<number, { rule: string; reason: string }>;
  done(state: FkState): boolean;
  /** The same test as done(), in SQL (a boolean expression): how the psql script skips a done step. */
  doneSql: string;
}

const isUuid = (s: FkState) => s.columnType === 'uuid';

/** What a CONCURRENTLY build holds up, and how long it waits (see retry.ts, runConcurrent). */
const CONCURRENT_WAIT =
  'no writer waits; the build waits for every transaction older than itself, up to --lock-retry-budget in one attempt (short lock timeouts would rebuild the whole index on each retry)';

/** Catalog tests in SQL, mirroring readFkState (state.ts), for the psql script's guards. */
function catalogTests(ref: Reference) {
  const T = ref.qualified;
  const attribute = (name: string) =>
    `(SELECT format_type(a.atttypid, NULL) FROM pg_attribute a WHERE a.attrelid = '${T}'::regclass AND a.attname = '${name}' AND NOT a.attisdropped)`;
  const constraintValid = (name: string) =>
    `(SELECT c.convalidated FROM pg_constraint c WHERE c.conrelid = '${T}'::regclass AND c.conname = '${name}')`;
  const fk = `SELECT 1 FROM pg_constraint c JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]
               WHERE c.conrelid = '${T}'::regclass AND c.contype = 'f' AND c.confrelid = 'mega_agent.cases'::regclass AND a.attname = '${ref.column}'`;
  return {
    uuid: `coalesce(${attribute(ref.column)} = 'uuid', false)`,
    shadow: `${attribute(ref.shadow)} IS NOT NULL`,
    trigger: `EXISTS (SELECT 1 FROM pg_trigger g WHERE g.tgrelid = '${T}'::regclass AND g.tgname = '${ref.trigger}')`,
    check: `${constraintValid(ref.notNullCheck)} IS NOT NULL`,
    checkValid: `coalesce(${constraintValid(ref.notNullCheck)}, false)`,
    uniqueIndexValid: `coalesce((SELECT i.indisvalid FROM pg_index i WHERE i.indexrelid = to_regclass('mega_agent.${ref.uniqueIndex}')), false)`,
    indexValid: `EXISTS (SELECT 1 FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
                  WHERE i.indrelid = '${T}'::regclass AND a.attname = '${ref.column}' AND i.indisvalid)`,
    fk: `EXISTS (${fk})`,
    fkValid: `EXISTS (${fk} AND c.convalidated)`,
  };
}
const or = (...parts: string[]) => parts.map((p) => `(${p})`).join(' OR ');

/**
 * One backfill batch: the next keyset page of the table (by its key, after $1…), its rows without
 * their uuid filled in; returns the page's last key, or no row when the table is done.
 */
export function backfillSql(ref: Reference): string {
  const T = ref.qualified;
  const keys = ref.key.map((k) => k.name).join(', ');
  const params = ref.key.map((k, i) => `$${i + 1}::${k.type}`).join(', ');
  const limit = `$${ref.key.length + 1}`;
  return `WITH b AS (SELECT ${keys} FROM ${T} WHERE (${keys}) > (${params}) ORDER BY ${keys} LIMIT ${limit}),
filled AS (UPDATE ${T} p SET ${ref.shadow} = p.${ref.column}::uuid
             FROM b WHERE ${ref.key.map((k) => `p.${k.name} = b.${k.name}`).join(' AND ')} AND p.${ref.shadow} IS NULL AND p.${ref.column} IS NOT NULL
           RETURNING 1)
SELECT (SELECT count(*) FROM filled) AS filled, ${ref.key.map((k) => `last.${k.name}::text`).join(', ')}
  FROM (SELECT ${keys} FROM b ORDER BY ${ref.key.map((k) => `${k.name} DESC`).join(', ')} LIMIT 1) last`;
}

/** The smallest key: where the backfill's first page starts. */
export function firstKey(ref: Reference): string[] {
  return ref.key.map((k) => (k.type === 'bigint' ? '-9223372036854775808' : ''));
}

/** Column privileges a GRANT can name; anything else read from the catalog is refused. */
const COLUMN_PRIVILEGES = new Set(['SELECT', 'INSERT', 'UPDATE', 'REFERENCES']);

/**
 * What the swap re-issues on the uuid column: the application's column grants and comment (the
 * dependents the online strategy carries; see dependents.ts).
 */
function carriedStatements(state: FkState): string[] {
  const { qualified: T, column } = state.reference;
  const statements: string[] = [];
  for (const d of state.dependents) {
    if (d.kind === 'grant' && COLUMN_PRIVILEGES.has(d.definition)) {
      // regrole's text is already quoted where the role name needs it (and PUBLIC is "-")
      const grantee = d.name === '-' ? 'PUBLIC' : d.name;
      statements.push(`GRANT ${d.definition} (${column}) ON ${T} TO ${grantee}`);
    }
    if (d.kind === 'comment') statements.push(`COMMENT ON COLUMN ${T}.${column} IS ${pg.escapeLiteral(d.definition)}`);
  }
  return statements;
}

/** The application's plain indexes on the column, which the online run builds again on the shadow column. */
const carriedIndexes = (state: FkState): Dependent[] => state.dependents.filter((d) => d.kind === 'index' && d.index);

/** The copy of one application index, on the shadow column. */
function carryIndexSql(state: FkState, d: Dependent): string {
  const { qualified: T, column, shadow } = state.reference;
  const columns = d.index!.columns.map((c) => (c === column ? shadow : quoted(c))).join(', ');
  return `CREATE ${d.index!.unique ? 'UNIQUE ' : ''}INDEX CONCURRENTLY IF NOT EXISTS ${carriedIndexName(d)} ON ${T} USING ${quoted(d.index!.method)} (${columns})`;
}

/** The swap's statements, and the indexes of the two that squawk flags on purpose. */
function swap(state: FkState): { statements: string[]; dropAt: number } {
  const ref = state.reference;
  const T = ref.qualified;
  const pk = ref.inPrimaryKey ? quoted(state.primaryKey?.name ?? `${ref.table}_pkey`) : undefined;
  const head = [
    ...(!ref.nullable ? [`ALTER TABLE ${T} ALTER COLUMN ${ref.shadow} SET NOT NULL`] : []),
    `DROP TRIGGER IF EXISTS ${ref.trigger} ON ${T}`,
    ...(pk ? [`ALTER TABLE ${T} DROP CONSTRAINT IF EXISTS ${pk}`] : []),
  ];
  return {
    dropAt: head.length,
    statements: [
      ...head,
      `ALTER TABLE ${T} DROP COLUMN ${ref.column}`,
      `ALTER TABLE ${T} RENAME COLUMN ${ref.shadow} TO ${ref.column}`,
      ...(pk ? [`ALTER TABLE ${T} ADD CONSTRAINT ${pk} PRIMARY KEY USING INDEX ${ref.uniqueIndex}`] : []),
      // the application's indexes went with the text column: their copies take their names
      ...carriedIndexes(state).map((d) => `ALTER INDEX mega_agent.${carriedIndexName(d)} RENAME TO ${quoted(d.name)}`),
      ...carriedStatements(state),
      ...(!ref.nullable ? [`ALTER TABLE ${T} DROP CONSTRAINT IF EXISTS ${ref.notNullCheck}`] : []),
      `DROP FUNCTION IF EXISTS ${ref.fn}()`,
    ],
  };
}

function onlineSteps(state: FkState): FkStep[] {
  const ref = state.reference;
  const { qualified: T, table, column, shadow } = ref;
  const Q = catalogTests(ref);
  const { statements: swapSql, dropAt } = swap(state);
  return [
    {
      id: 'add_shadow_column',
      title: `add the uuid shadow column ${table}.${shadow}`,
      mode: 'transaction',
      lock: 'ACCESS EXCLUSIVE, brief (a nullable column without default is a catalog change, no rewrite)',
      effect: 'writers wait only for the catalog change',
      statements: [`ALTER TABLE ${T} ADD COLUMN IF NOT EXISTS ${shadow} uuid`],
      done: (s) => isUuid(s) || s.hasShadow,
      doneSql: or(Q.uuid, Q.shadow),
    },
    {
      id: 'sync_trigger',
      title: 'keep the shadow column in sync with a trigger',
      mode: 'transaction',
      lock: 'SHARE ROW EXCLUSIVE, brief (CREATE TRIGGER)',
      effect: `from now on every insert or ${column} update also writes the uuid; a ${column} that is no uuid is rejected (SQLSTATE 22P02) instead of stored`,
      statements: [
        `CREATE SCHEMA IF NOT EXISTS caseguard`,
        `CREATE OR REPLACE FUNCTION ${ref.fn}() RETURNS trigger LANGUAGE plpgsql AS $fn$ BEGIN NEW.${shadow} := NEW.${column}::uuid; RETURN NEW; END $fn$`,
        `DROP TRIGGER IF EXISTS ${ref.trigger} ON ${T}`,
        `CREATE TRIGGER ${ref.trigger} BEFORE INSERT OR UPDATE OF ${column} ON ${T} FOR EACH ROW EXECUTE FUNCTION ${ref.fn}()`,
      ],
      done: (s) => isUuid(s) || s.hasTrigger,
      doneSql: or(Q.uuid, Q.trigger),
    },
    {
      id: 'backfill',
      title: 'backfill the shadow column in keyset batches',
      mode: 'batches',
      lock: 'ROW EXCLUSIVE; row locks on one batch at a time, each batch its own transaction',
      effect: 'a writer of a row in the current batch waits for that batch only',
      statements: [backfillSql(ref)],
      done: isUuid,
      doneSql: Q.uuid,
    },
    ...(!ref.nullable
      ? ([
          {
            id: 'not_null_check',
            title: 'add a CHECK (shadow IS NOT NULL) NOT VALID (no scan)',
            mode: 'transaction',
            lock: 'ACCESS EXCLUSIVE, brief (NOT VALID skips the scan)',
            effect: 'writers wait only for the catalog change; new rows are checked from now on',
            statements: [`ALTER TABLE ${T} ADD CONSTRAINT ${ref.notNullCheck} CHECK (${shadow} IS NOT NULL) NOT VALID`],
            done: (s) => isUuid(s) || s.notNullCheck !== undefined,
            doneSql: or(Q.uuid, Q.check),
          },
          {
            id: 'validate_not_null',
            title: 'validate the CHECK in its own transaction',
            mode: 'transaction',
            lock: 'SHARE UPDATE EXCLUSIVE (reads and writes go on)',
            effect: 'the validation scans the table without blocking writers',
            statements: [`ALTER TABLE ${T} VALIDATE CONSTRAINT ${ref.notNullCheck}`],
            done: (s) => isUuid(s) || s.notNullCheck === true,
            doneSql: or(Q.uuid, Q.checkValid),
          },
        ] satisfies FkStep[])
      : []),
    // only where the application has indexes on the column to carry (or copies are being built)
    ...(carriedIndexes(state).length > 0 || Object.keys(state.carriedIndexes).length > 0
      ? [
          {
            id: 'carry_indexes',
            title: `build the application's indexes on ${column} again on the shadow column, concurrently`,
            mode: 'concurrent',
            lock: 'SHARE UPDATE EXCLUSIVE (reads and writes go on)',
            effect: `no writer waits; ${
              carriedIndexes(state).length
                ? carriedIndexes(state)
                    .map((d) => d.name)
                    .join(', ')
                : 'none to build'
            }`,
            statements: carriedIndexes(state).flatMap((d) => [
              `DROP INDEX CONCURRENTLY IF EXISTS mega_agent.${carriedIndexName(d)}`,
              carryIndexSql(state, d),
            ]),
            done: (s) => isUuid(s) || carriedIndexes(s).every((d) => s.carriedIndexes[carriedIndexName(d)] === true),
            doneSql: or(
              Q.uuid,
              carriedIndexes(state).length === 0
                ? 'true'
                : carriedIndexes(state)
                    .map(
                      (d) =>
                        `coalesce((SELECT i.indisvalid FROM pg_index i WHERE i.indexrelid = to_regclass('mega_agent.${carriedIndexName(d)}')), false)`,
                    )
                    .join(' AND '),
            ),
          } satisfies FkStep,
        ]
      : []),
    ...(ref.inPrimaryKey
      ? ([
          {
            id: 'unique_index',
            title: 'build the new primary key index concurrently',
            mode: 'concurrent',
            lock: 'SHARE UPDATE EXCLUSIVE (reads and writes go on)',
            effect: CONCURRENT_WAIT,
            statements: [
              `DROP INDEX CONCURRENTLY IF EXISTS mega_agent.${ref.uniqueIndex}`,
              `CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS ${ref.uniqueIndex} ON ${T} (user_id, ${shadow})`,
            ],
            done: (s) => isUuid(s) || s.uniqueIndex === true,
            doneSql: or(Q.uuid, Q.uniqueIndexValid),
          },
        ] satisfies FkStep[])
      : []),
    {
      id: 'swap',
      title: `swap the columns${ref.inPrimaryKey ? ' and attach the primary key' : ''}, in one short transaction`,
      mode: 'transaction',
      lock: `ACCESS EXCLUSIVE, brief: ${!ref.nullable ? 'SET NOT NULL uses the validated CHECK' : 'catalog changes only'}${ref.inPrimaryKey ? ' and the primary key uses the built index' : ''}, so nothing is scanned`,
      effect:
        `from now on ${column} is uuid: writers that send it as an untyped parameter or literal go on unchanged; one that sends it typed as text needs a cast. ` +
        `${column} becomes the table's last column (it is column ${state.columnPosition} now): SELECT * and INSERT without a column list see the new order; --strategy rewrite keeps the position`,
      statements: swapSql,
      suppress: {
        [dropAt]: {
          rule: 'ban-drop-column',
          reason: `the text column is replaced by the uuid column holding the same ids (fk drop --revert-type brings text back)`,
        },
        [dropAt + 1]: { rule: 'renaming-column', reason: 'the uuid column takes the old name, so readers and writers keep working' },
      },
      done: isUuid,
      doneSql: Q.uuid,
    },
  ];
}

export function stepsFor(strategy: Strategy, state: FkState): FkStep[] {
  const ref = state.reference;
  const { qualified: T, table, column } = ref;
  const Q = catalogTests(ref);
  const typeSteps: FkStep[] =
    strategy === 'rewrite'
      ? [
          {
            id: 'alter_type',
            title: `change ${table}.${column} from text to uuid by rewriting the table`,
            mode: 'transaction',
            lock: `ACCESS EXCLUSIVE on ${table} for the whole rewrite`,
            effect: `reads and writes of ${table} wait until the table and its indexes are rewritten`,
            statements: [`ALTER TABLE ${T} ALTER COLUMN ${column} TYPE uuid USING ${column}::uuid`],
            suppress: {
              0: {
                rule: 'changing-column-type',
                reason: 'the rewrite strategy was chosen: writers wait for the whole rewrite (use --strategy online for large tables)',
              },
            },
            done: isUuid,
            doneSql: Q.uuid,
          },
        ]
      : onlineSteps(state);
  const steps: FkStep[] = [
    ...typeSteps,
    {
      id: 'index',
      title: `index ${column} concurrently (${ref.onDelete === 'CASCADE' ? 'cascading deletes' : 'SET NULL on delete'} of cases need it)`,
      mode: 'concurrent',
      lock: 'SHARE UPDATE EXCLUSIVE (reads and writes go on)',
      effect: CONCURRENT_WAIT,
      statements: [
        `DROP INDEX CONCURRENTLY IF EXISTS mega_agent.${ref.index}`,
        `CREATE INDEX CONCURRENTLY IF NOT EXISTS ${ref.index} ON ${T} (${column})`,
      ],
      done: (s) => s.caseIdIndex?.valid === true,
      doneSql: Q.indexValid,
    },
    {
      id: 'add_fk',
      title: 'add the foreign key NOT VALID (no scan)',
      mode: 'transaction',
      lock: `SHARE ROW EXCLUSIVE on ${table} and cases, brief`,
      effect: 'writers of both tables wait only for the catalog change; new rows are checked from now on',
      statements: [
        // cases first, in the order the application writes (case, then progress, memory and
        // pointers): taking the other table first would deadlock with a writer that holds cases.
        `LOCK TABLE mega_agent.cases IN SHARE ROW EXCLUSIVE MODE`,
        `ALTER TABLE ${T} ADD CONSTRAINT ${ref.fk} FOREIGN KEY (${column}) REFERENCES mega_agent.cases (case_id) ON DELETE ${ref.onDelete} NOT VALID`,
      ],
      done: (s) => s.foreignKey !== undefined,
      doneSql: Q.fk,
    },
    {
      id: 'validate_fk',
      title: 'validate the foreign key in its own transaction',
      mode: 'transaction',
      lock: `SHARE UPDATE EXCLUSIVE on ${table}, ROW SHARE on cases (reads and writes go on)`,
      effect: 'existing rows are checked without blocking writers',
      statements: [`ALTER TABLE ${T} VALIDATE CONSTRAINT ${quoted(state.foreignKey?.name ?? ref.fk)}`],
      done: (s) => s.foreignKey?.validated === true,
      doneSql: Q.fkValid,
    },
  ];
  return steps.map((step) => ({ ...step, id: `${ref.id}.${step.id}` }));
}
