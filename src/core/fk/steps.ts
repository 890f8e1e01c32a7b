/**
 * The steps of `fk add`, as data: the SQL each runs, the lock it takes (as the PostgreSQL
 * ALTER TABLE documentation states it), what waits meanwhile, and how to tell it is done.
 *
 * online (default): a uuid shadow column kept in sync by a trigger, backfilled in keyset
 * batches, proven NOT NULL by a validated CHECK (so SET NOT NULL skips its scan), a unique
 * index built CONCURRENTLY, then one short swap that attaches the primary key USING INDEX.
 * rewrite: ALTER COLUMN TYPE ... USING, one ACCESS EXCLUSIVE rewrite; fine for small tables.
 * Both then build the case_id index CONCURRENTLY, add the FK NOT VALID, and VALIDATE it apart.
 */
import pg from 'pg';
import { NAMES, quoted, type FkState } from './state.js';

export type Strategy = 'online' | 'rewrite';

export interface FkStep {
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

const T = NAMES.table;
const isUuid = (s: FkState) => s.columnType === 'uuid';

/** Catalog tests in SQL, mirroring readFkState (state.ts), for the psql script's guards. */
const attribute = (name: string) => `(SELECT format_type(a.atttypid, NULL) FROM pg_attribute a WHERE a.attrelid = '${T}'::regclass AND a.attname = '${name}' AND NOT a.attisdropped)`;
const constraintValid = (name: string) => `(SELECT c.convalidated FROM pg_constraint c WHERE c.conrelid = '${T}'::regclass AND c.conname = '${name}')`;
const Q = {
  uuid: `coalesce(${attribute('case_id')} = 'uuid', false)`,
  shadow: `${attribute(NAMES.shadow)} IS NOT NULL`,
  trigger: `EXISTS (SELECT 1 FROM pg_trigger g WHERE g.tgrelid = '${T}'::regclass AND g.tgname = '${NAMES.trigger}')`,
  check: `${constraintValid(NAMES.notNullCheck)} IS NOT NULL`,
  checkValid: `coalesce(${constraintValid(NAMES.notNullCheck)}, false)`,
  uniqueIndexValid: `coalesce((SELECT i.indisvalid FROM pg_index i WHERE i.indexrelid = to_regclass('mega_agent.${NAMES.uniqueIndex}')), false)`,
  caseIdIndexValid: `EXISTS (SELECT 1 FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
                      WHERE i.indrelid = '${T}'::regclass AND a.attname = 'case_id' AND i.indisvalid)`,
  fk: `EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conrelid = '${T}'::regclass AND c.contype = 'f' AND c.confrelid = 'mega_agent.cases'::regclass)`,
  fkValid: `EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conrelid = '${T}'::regclass AND c.contype = 'f' AND c.confrelid = 'mega_agent.cases'::regclass AND c.convalidated)`,
};
const or = (...parts: string[]) => parts.map((p) => `(${p})`).join(' OR ');

/** One backfill batch: the next keyset page of rows without their uuid, filled in. */
export const BACKFILL_SQL = `UPDATE ${T} p SET ${NAMES.shadow} = p.case_id::uuid
  FROM (SELECT user_id, case_id FROM ${T}
         WHERE ${NAMES.shadow} IS NULL AND (user_id, case_id) > ($1, $2)
         ORDER BY user_id, case_id LIMIT $3) b
 WHERE p.user_id = b.user_id AND p.case_id = b.case_id
RETURNING p.user_id, p.case_id`;

/** Column privileges a GRANT can name; anything else read from the catalog is refused. */
const COLUMN_PRIVILEGES = new Set(['SELECT', 'INSERT', 'UPDATE', 'REFERENCES']);

/**
 * What the swap re-issues on the uuid column: the application's column grants and comment (the
 * dependents the online strategy carries; see dependents.ts). The primary key is attached again.
 */
function carriedStatements(state: FkState): string[] {
  const statements: string[] = [];
  for (const d of state.dependents) {
    if (d.kind === 'grant' && COLUMN_PRIVILEGES.has(d.definition)) {
      // regrole's text is already quoted where the role name needs it (and PUBLIC is "-")
      const grantee = d.name === '-' ? 'PUBLIC' : d.name;
      statements.push(`GRANT ${d.definition} (case_id) ON ${T} TO ${grantee}`);
    }
    if (d.kind === 'comment') statements.push(`COMMENT ON COLUMN ${T}.case_id IS ${pg.escapeLiteral(d.definition)}`);
  }
  return statements;
}

function swapStatements(state: FkState): string[] {
  const pk = quoted(state.primaryKey?.name ?? 'case_intake_progress_pkey');
  return [
    `ALTER TABLE ${T} ALTER COLUMN ${NAMES.shadow} SET NOT NULL`,
    `DROP TRIGGER IF EXISTS ${NAMES.trigger} ON ${T}`,
    `ALTER TABLE ${T} DROP CONSTRAINT IF EXISTS ${pk}`,
    `ALTER TABLE ${T} DROP COLUMN case_id`,
    `ALTER TABLE ${T} RENAME COLUMN ${NAMES.shadow} TO case_id`,
    `ALTER TABLE ${T} ADD CONSTRAINT ${pk} PRIMARY KEY USING INDEX ${NAMES.uniqueIndex}`,
    ...carriedStatements(state),
    `ALTER TABLE ${T} DROP CONSTRAINT IF EXISTS ${NAMES.notNullCheck}`,
    `DROP FUNCTION IF EXISTS ${NAMES.fn}()`,
  ];
}

export function stepsFor(strategy: Strategy, state: FkState): FkStep[] {
  const typeSteps: FkStep[] =
    strategy === 'rewrite'
      ? [
          {
            id: 'alter_type',
            title: 'change case_id from text to uuid by rewriting the table',
            mode: 'transaction',
            lock: 'ACCESS EXCLUSIVE on case_intake_progress for the whole rewrite',
            effect: 'reads and writes of case_intake_progress wait until the table and its indexes are rewritten',
            statements: [`ALTER TABLE ${T} ALTER COLUMN case_id TYPE uuid USING case_id::uuid`],
            suppress: {
              0: { rule: 'changing-column-type', reason: 'the rewrite strategy was chosen: writers wait for the whole rewrite (use --strategy online for large tables)' },
            },
            done: isUuid,
            doneSql: Q.uuid,
          },
        ]
      : [
          {
            id: 'add_shadow_column',
            title: 'add the uuid shadow column',
            mode: 'transaction',
            lock: 'ACCESS EXCLUSIVE, brief (a nullable column without default is a catalog change, no rewrite)',
            effect: 'writers wait only for the catalog change',
            statements: [`ALTER TABLE ${T} ADD COLUMN IF NOT EXISTS ${NAMES.shadow} uuid`],
            done: (s) => isUuid(s) || s.hasShadow,
            doneSql: or(Q.uuid, Q.shadow),
          },
          {
            id: 'sync_trigger',
            title: 'keep the shadow column in sync with a trigger',
            mode: 'transaction',
            lock: 'SHARE ROW EXCLUSIVE, brief (CREATE TRIGGER)',
            effect:
              'from now on every insert or case_id update also writes the uuid; a case_id that is no uuid is rejected (SQLSTATE 22P02) instead of stored',
            statements: [
              `CREATE SCHEMA IF NOT EXISTS caseguard`,
              `CREATE OR REPLACE FUNCTION ${NAMES.fn}() RETURNS trigger LANGUAGE plpgsql AS $fn$ BEGIN NEW.${NAMES.shadow} := NEW.case_id::uuid; RETURN NEW; END $fn$`,
              `DROP TRIGGER IF EXISTS ${NAMES.trigger} ON ${T}`,
              `CREATE TRIGGER ${NAMES.trigger} BEFORE INSERT OR UPDATE OF case_id ON ${T} FOR EACH ROW EXECUTE FUNCTION ${NAMES.fn}()`,
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
            statements: [BACKFILL_SQL],
            done: isUuid,
            doneSql: Q.uuid,
          },
          {
            id: 'not_null_check',
            title: 'add a CHECK (shadow IS NOT NULL) NOT VALID (no scan)',
            mode: 'transaction',
            lock: 'ACCESS EXCLUSIVE, brief (NOT VALID skips the scan)',
            effect: 'writers wait only for the catalog change; new rows are checked from now on',
            statements: [`ALTER TABLE ${T} ADD CONSTRAINT ${NAMES.notNullCheck} CHECK (${NAMES.shadow} IS NOT NULL) NOT VALID`],
            done: (s) => isUuid(s) || s.notNullCheck !== undefined,
            doneSql: or(Q.uuid, Q.check),
          },
          {
            id: 'validate_not_null',
            title: 'validate the CHECK in its own transaction',
            mode: 'transaction',
            lock: 'SHARE UPDATE EXCLUSIVE (reads and writes go on)',
            effect: 'the validation scans the table without blocking writers',
            statements: [`ALTER TABLE ${T} VALIDATE CONSTRAINT ${NAMES.notNullCheck}`],
            done: (s) => isUuid(s) || s.notNullCheck === true,
            doneSql: or(Q.uuid, Q.checkValid),
          },
          {
            id: 'unique_index',
            title: 'build the new primary key index concurrently',
            mode: 'concurrent',
            lock: 'SHARE UPDATE EXCLUSIVE (reads and writes go on)',
            effect: 'no writer waits; the build waits for transactions older than itself',
            statements: [
              `DROP INDEX CONCURRENTLY IF EXISTS mega_agent.${NAMES.uniqueIndex}`,
              `CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS ${NAMES.uniqueIndex} ON ${T} (user_id, ${NAMES.shadow})`,
            ],
            done: (s) => isUuid(s) || s.uniqueIndex === true,
            doneSql: or(Q.uuid, Q.uniqueIndexValid),
          },
          {
            id: 'swap',
            title: 'swap the columns and attach the primary key, in one short transaction',
            mode: 'transaction',
            lock: 'ACCESS EXCLUSIVE, brief: SET NOT NULL uses the validated CHECK and the primary key uses the built index, so nothing is scanned',
            effect:
              'from now on case_id is uuid: writers that send case_id as an untyped parameter or literal go on unchanged; one that sends it typed as text needs a cast. ' +
              `case_id becomes the table's last column (it is column ${state.columnPosition} now): SELECT * and INSERT without a column list see the new order; --strategy rewrite keeps the position`,
            statements: swapStatements(state),
            suppress: {
              3: { rule: 'ban-drop-column', reason: 'the text column is replaced by the uuid column holding the same ids (fk drop --revert-type brings text back)' },
              4: { rule: 'renaming-column', reason: 'the uuid column takes the old name, so readers and writers keep working' },
            },
            done: isUuid,
            doneSql: Q.uuid,
          },
        ];
  return [
    ...typeSteps,
    {
      id: 'case_id_index',
      title: 'index case_id concurrently (cascading deletes on cases need it)',
      mode: 'concurrent',
      lock: 'SHARE UPDATE EXCLUSIVE (reads and writes go on)',
      effect: 'no writer waits',
      statements: [
        `DROP INDEX CONCURRENTLY IF EXISTS mega_agent.${NAMES.caseIdIndex}`,
        `CREATE INDEX CONCURRENTLY IF NOT EXISTS ${NAMES.caseIdIndex} ON ${T} (case_id)`,
      ],
      done: (s) => s.caseIdIndex?.valid === true,
      doneSql: Q.caseIdIndexValid,
    },
    {
      id: 'add_fk',
      title: 'add the foreign key NOT VALID (no scan)',
      mode: 'transaction',
      lock: 'SHARE ROW EXCLUSIVE on case_intake_progress and cases, brief',
      effect: 'writers of both tables wait only for the catalog change; new rows are checked from now on',
      statements: [
        // cases first, in the order the application writes (case, then progress): taking
        // progress first would deadlock with a writer that holds cases and waits for progress.
        `LOCK TABLE mega_agent.cases IN SHARE ROW EXCLUSIVE MODE`,
        `ALTER TABLE ${T} ADD CONSTRAINT ${NAMES.fk} FOREIGN KEY (case_id) REFERENCES mega_agent.cases (case_id) ON DELETE CASCADE NOT VALID`,
      ],
      done: (s) => s.foreignKey !== undefined,
      doneSql: Q.fk,
    },
    {
      id: 'validate_fk',
      title: 'validate the foreign key in its own transaction',
      mode: 'transaction',
      lock: 'SHARE UPDATE EXCLUSIVE on case_intake_progress, ROW SHARE on cases (reads and writes go on)',
      effect: 'existing rows are checked without blocking writers',
      statements: [`ALTER TABLE ${T} VALIDATE CONSTRAINT ${quoted(state.foreignKey?.name ?? NAMES.fk)}`],
      done: (s) => s.foreignKey?.validated === true,
      doneSql: Q.fkValid,
    },
  ];
}
