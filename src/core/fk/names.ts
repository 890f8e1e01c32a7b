/**
 * The three references fk adds (see references.ts), and the names of what it creates for each:
 * the constraint, its index and the online scaffolding (shadow column, sync trigger and its
 * function, NOT NULL check).
 */
import pg from 'pg';
import { CASE_REFERENCES, type CaseReference, type ReferenceId } from '../references.js';

export type { ReferenceId } from '../references.js';

/** How case_id becomes uuid: a shadow column and a short swap (online), or ALTER COLUMN TYPE (rewrite). */
export type Strategy = 'online' | 'rewrite';

/** A name read from the catalog, quoted for the DDL it goes into (mixed case, spaces, quotes). */
export const quoted = (name: string): string => pg.escapeIdentifier(name);

export interface Reference extends CaseReference {
  /** Schema-qualified table: mega_agent.case_intake_progress. */
  qualified: string;
  /** The column is part of the primary key (the online swap attaches the key again). */
  inPrimaryKey: boolean;
  shadow: string;
  trigger: string;
  fn: string;
  notNullCheck: string;
  /** The unique index the primary key is attached to after the swap (progress only). */
  uniqueIndex?: string;
  index: string;
  fk: string;
}

/** The names fk gives what it creates for a reference; progress's keep the names earlier versions gave them. */
function names(r: CaseReference): Reference {
  const inPrimaryKey = r.id === 'progress';
  return {
    ...r,
    qualified: `mega_agent.${r.table}`,
    inPrimaryKey,
    shadow: `${r.column}_uuid`,
    trigger: `caseguard_sync_${r.column}_uuid`,
    fn: `caseguard.${r.table}_sync_${r.column}`,
    notNullCheck: `${r.table}_${r.column}_uuid_not_null`,
    ...(inPrimaryKey ? { uniqueIndex: `${r.table}_user_id_${r.column}_uuid_key` } : {}),
    index: `${r.table}_${r.column}_idx`,
    fk: r.id === 'active_case' ? 'fk_bot_user_context_active_case' : `fk_${r.table}_case`,
  };
}

export const REFERENCES: readonly Reference[] = CASE_REFERENCES.map(names);

export const PROGRESS = REFERENCES[0]!;

export function fkReference(id: ReferenceId): Reference {
  return REFERENCES.find((r) => r.id === id)!;
}
