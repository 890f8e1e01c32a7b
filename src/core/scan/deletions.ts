/**
 * Deletion tracking: what lets `scan --since T` see an orphan made by deleting its case (a
 * filter on the referencing rows' own timestamps cannot). Two triggers on mega_agent.cases, the
 * application's table, installed only when the DBA asks (`caseguard migrate --track-deletions`):
 * a statement-level one that records a statement's deleted cases in one insert, and a row-level
 * one that fires only when a case_id changes. Both run caseguard.note_case_deletions()
 * (migration 0006) into caseguard.case_deletions. A window is covered once tracking was
 * installed at or before its start and both triggers are still enabled.
 */
import { sql } from 'drizzle-orm';
import type { Db, Executor } from '../db/database.js';
import { SqlState, sqlStateOf } from '../db/sqlstate.js';
import { BusyError } from '../errors.js';

const TRIGGERS = ['caseguard_note_case_deletes', 'caseguard_note_case_id_changes'] as const;

export interface DeletionTracking {
  /** Since when deletions are recorded; undefined when they are not (or this role cannot tell). */
  since?: Date;
}

/** Whether deletions of cases are being recorded, and since when; never throws for a role without access. */
export async function readDeletionTracking(db: Executor): Promise<DeletionTracking> {
  const r = await db.execute<{ since: string | null } & Record<string, unknown>>(sql`
    SELECT CASE WHEN has_table_privilege(t.oid, 'SELECT') AND has_table_privilege(d.oid, 'SELECT') THEN 'readable' END AS since
      FROM pg_catalog.pg_class t, pg_catalog.pg_class d
     WHERE t.oid = to_regclass('caseguard.deletion_tracking') AND d.oid = to_regclass('caseguard.case_deletions')`);
  if (!r.rows[0]?.since) return {};
  const state = await db.execute<{ installed_at: string; enabled: string } & Record<string, unknown>>(sql`
    SELECT (SELECT ceil(extract(epoch FROM max(installed_at)) * 1000) FROM caseguard.deletion_tracking)::text AS installed_at,
           (SELECT count(*) FROM pg_catalog.pg_trigger
             WHERE tgrelid = 'mega_agent.cases'::regclass AND tgenabled <> 'D'
               AND tgname IN (${sql.join(
                 TRIGGERS.map((t) => sql`${t}`),
                 sql`, `,
               )}))::text AS enabled`);
  const row = state.rows[0];
  if (!row?.installed_at || Number(row.enabled) !== TRIGGERS.length) return {};
  return { since: new Date(Number(row.installed_at)) };
}

/**
 * Installs the triggers (idempotent: tracking already in place keeps its start). CREATE TRIGGER
 * takes a brief SHARE ROW EXCLUSIVE lock on cases: waited for at most lockTimeout, then exit 5.
 */
export async function installDeletionTracking(db: Db, lockTimeout = '5s'): Promise<{ since: Date; already: boolean }> {
  const current = await readDeletionTracking(db);
  if (current.since) return { since: current.since, already: true };
  try {
    return await db.transaction(async (tx) => {
      await tx.execute(sql`SELECT set_config('lock_timeout', ${lockTimeout}, true)`);
      for (const t of TRIGGERS) await tx.execute(sql`DROP TRIGGER IF EXISTS ${sql.identifier(t)} ON mega_agent.cases`);
      await tx.execute(sql`CREATE TRIGGER ${sql.identifier(TRIGGERS[0])} AFTER DELETE ON mega_agent.cases
        REFERENCING OLD TABLE AS gone FOR EACH STATEMENT EXECUTE FUNCTION caseguard.note_case_deletions()`);
      await tx.execute(sql`CREATE TRIGGER ${sql.identifier(TRIGGERS[1])} AFTER UPDATE OF case_id ON mega_agent.cases
        FOR EACH ROW WHEN (OLD.case_id IS DISTINCT FROM NEW.case_id) EXECUTE FUNCTION caseguard.note_case_deletions()`);
      await tx.execute(sql`DELETE FROM caseguard.deletion_tracking`);
      const r = await tx.execute<{ installed_at: string }>(
        sql`INSERT INTO caseguard.deletion_tracking (installed_at) VALUES (now()) RETURNING ceil(extract(epoch FROM installed_at) * 1000)::text AS installed_at`,
      );
      return { since: new Date(Number(r.rows[0]!.installed_at)), already: false };
    });
  } catch (error) {
    if (sqlStateOf(error) === SqlState.lockNotAvailable) {
      throw new BusyError(
        `could not lock mega_agent.cases within ${lockTimeout} to add the deletion triggers (busy writers); nothing was changed; retry`,
        { cause: error },
      );
    }
    throw error;
  }
}

/** Removes the triggers and what they recorded; scan --since is changed-rows-only again. */
export async function removeDeletionTracking(db: Db, lockTimeout = '5s'): Promise<{ removed: boolean }> {
  const current = await readDeletionTracking(db);
  await db.transaction(async (tx) => {
    await tx.execute(sql`SELECT set_config('lock_timeout', ${lockTimeout}, true)`);
    for (const t of TRIGGERS) await tx.execute(sql`DROP TRIGGER IF EXISTS ${sql.identifier(t)} ON mega_agent.cases`);
    await tx.execute(sql`DELETE FROM caseguard.deletion_tracking`);
    await tx.execute(sql`TRUNCATE caseguard.case_deletions`);
  });
  return { removed: current.since !== undefined };
}
