/**
 * watch's logical replication slot and publication: what is there (read-only, with the reasons
 * watch cannot run), making them (the publication on mega_agent's tables, the slot registered in
 * caseguard.watch_slots with the publication it follows), dropping them, and what the slot
 * keeps the server from recycling.
 */
import { sql } from 'drizzle-orm';
import type pg from 'pg';
import { BusyError, ConnectionError, SchemaError, UsageError } from '../errors.js';
import type { Database } from '../db/database.js';
import { inspectDatabase } from '../db/inspect.js';
import { withClient, withRunLock } from '../db/locks.js';
import { ensureJournalSchema } from '../db/migrate.js';

/** Slot and publication names watch accepts: what PostgreSQL allows for a slot, for both. */
const NAME = /^[a-z0-9_]{1,63}$/;

export const DEFAULT_PUBLICATION = 'caseguard_watch';

/**
 * A slot belongs to the server, not to one database: the default names the database
 * (caseguard_watch_<database>, in the letters a slot name allows).
 */
export function defaultSlot(databaseName: string): string {
  return `caseguard_watch_${databaseName.toLowerCase().replace(/[^a-z0-9_]/g, '_')}`.slice(0, 63);
}

export interface WatchTarget {
  /** Undefined: the default for the database. */
  slot?: string;
  publication: string;
}

async function currentDatabase(database: Database): Promise<string> {
  const r = await database.pool.query<{ db: string }>('SELECT current_database() AS db');
  return r.rows[0]!.db;
}

export interface WatchSetup extends WatchTarget {
  slot: string;
  /** The slot exists (watch resumes from what it last acknowledged). */
  slotExists: boolean;
  publicationExists: boolean;
  /** The mega_agent tables the publication must carry. */
  tables: string[];
  /** What watch would create, in order: nothing when both exist. */
  creates: string[];
}

/** A name given on the command line, checked before anything is sent. */
export function checkName(kind: 'slot' | 'publication', name: string): string {
  if (!NAME.test(name)) throw new UsageError(`invalid ${kind} name "${name}": use 1 to 63 lower-case letters, digits and underscores`);
  return name;
}

interface SlotRow {
  plugin: string | null;
  slot_type: string;
  database: string | null;
  active: boolean;
  active_pid: number | null;
}

/**
 * What watch would follow, or the one-line reason it cannot: wal_level not logical (exit 4), a
 * role without REPLICATION (exit 3), a standby or a slot that is not watch's for this publication
 * (exit 2), a slot in use by another process (exit 5).
 */
export async function inspectWatch(database: Database, target: WatchTarget): Promise<WatchSetup> {
  const { publication } = target;
  const slot = target.slot ?? defaultSlot(await currentDatabase(database));
  if (database.readOnly === 'standby') throw new UsageError('watch follows the primary: this server is a standby; connect to the primary');
  const shape = await inspectDatabase(database.db);
  return withClient(database.pool, async (client) => {
    const facts = await client.query<{ wal_level: string; replication: boolean; db: string }>(
      `SELECT current_setting('wal_level') AS wal_level, current_database() AS db,
              (SELECT rolreplication OR rolsuper FROM pg_roles WHERE rolname = current_user) AS replication`,
    );
    const { wal_level: walLevel, replication, db } = facts.rows[0]!;
    if (walLevel !== 'logical')
      throw new SchemaError(
        `wal_level is ${walLevel}: watch reads a logical replication slot; set wal_level = logical (ALTER SYSTEM SET wal_level = logical) and restart the server`,
      );
    if (!replication)
      throw new ConnectionError(
        'the role has no REPLICATION attribute: watch reads a replication slot; ALTER ROLE … REPLICATION, or use such a role',
      );
    const tables = [
      'cases',
      'case_intake_progress',
      ...(shape.hasMemory ? ['case_memory'] : []),
      ...(shape.hasUserContext ? ['bot_user_context'] : []),
    ];
    const slots = await client.query<SlotRow>(
      'SELECT plugin, slot_type, database, active, active_pid FROM pg_replication_slots WHERE slot_name = $1',
      [slot],
    );
    const found = slots.rows[0];
    if (found) {
      if (found.slot_type !== 'logical' || found.plugin !== 'pgoutput' || found.database !== db)
        throw new UsageError(
          `slot ${slot} exists and is not a pgoutput slot of this database (${found.slot_type}, ${found.plugin ?? 'no plugin'}, ${found.database ?? 'no database'}); choose another with --slot`,
        );
      const registered = shape.hasJournal ? await registeredPublication(client, slot) : undefined;
      if (registered === undefined)
        throw new UsageError(`slot ${slot} exists but caseguard watch did not make it; choose another with --slot`);
      if (registered !== publication)
        throw new UsageError(
          `slot ${slot} follows publication ${registered}, not ${publication}; give --publication ${registered} or another --slot`,
        );
      if (found.active)
        throw new BusyError(`slot ${slot} is in use by process ${found.active_pid ?? '?'} (another caseguard watch); one watch per slot`);
    }
    const pubs = await client.query<{ tables: string[] | null; all_ops: boolean }>(
      `SELECT (SELECT array_agg(tablename::text) FROM pg_publication_tables t WHERE t.pubname = p.pubname AND t.schemaname = 'mega_agent') AS tables,
              p.pubinsert AND p.pubupdate AND p.pubdelete AND p.pubtruncate AS all_ops
         FROM pg_publication p WHERE p.pubname = $1`,
      [publication],
    );
    const pub = pubs.rows[0];
    if (pub) {
      const missing = tables.filter((t) => !(pub.tables ?? []).includes(t));
      if (missing.length > 0 || !pub.all_ops)
        throw new UsageError(
          `publication ${publication} exists but does not publish ${missing.length > 0 ? missing.map((t) => `mega_agent.${t}`).join(', ') : 'every insert, update, delete and truncate'}; choose another with --publication`,
        );
    }
    const creates = [
      ...(pub ? [] : [`publication ${publication} FOR TABLE ${tables.map((t) => `mega_agent.${t}`).join(', ')}`]),
      ...(found ? [] : [`logical replication slot ${slot} (pgoutput), registered in caseguard.watch_slots`]),
    ];
    return { slot, publication, slotExists: Boolean(found), publicationExists: Boolean(pub), tables, creates };
  });
}

async function registeredPublication(client: pg.ClientBase, slot: string): Promise<string | undefined> {
  const present = await client.query<{ ok: boolean }>(`SELECT to_regclass('caseguard.watch_slots') IS NOT NULL AS ok`);
  if (!present.rows[0]?.ok) return undefined;
  const r = await client.query<{ publication: string }>('SELECT publication FROM caseguard.watch_slots WHERE slot_name = $1', [slot]);
  return r.rows[0]?.publication;
}

/**
 * Makes the publication where it is missing and registers the slot, holding the run lock (so
 * caseguard's schema is migrated by one process at a time). The slot itself is made by the
 * caller on a replication connection, which exports the snapshot the first scan reads.
 */
export async function prepareWatch(database: Database, setup: WatchSetup): Promise<void> {
  await withRunLock(database, { what: 'caseguard watch' }, async () => {
    await ensureJournalSchema(database.pool);
    await database.db.transaction(async (tx) => {
      if (!setup.publicationExists) {
        const tables = sql.join(
          setup.tables.map((t) => sql`mega_agent.${sql.identifier(t)}`),
          sql`, `,
        );
        await tx.execute(sql`CREATE PUBLICATION ${sql.identifier(setup.publication)} FOR TABLE ${tables}`);
      }
      await tx.execute(sql`
        INSERT INTO caseguard.watch_slots (slot_name, publication, created_publication)
        VALUES (${setup.slot}, ${setup.publication}, ${!setup.publicationExists})
        ON CONFLICT (slot_name) DO UPDATE SET publication = EXCLUDED.publication`);
    });
  });
}

export interface DropResult {
  slot: string;
  publication: string;
  droppedSlot: boolean;
  droppedPublication: boolean;
}

/** The publication a slot watch made follows; refuses a slot not watch's (exit 2) or in use (exit 5). */
export async function planDropSlot(
  database: Database,
  chosen: string | undefined,
): Promise<{ slot: string; publication: string; slotExists: boolean }> {
  const slot = chosen ?? defaultSlot(await currentDatabase(database));
  return withClient(database.pool, async (client) => {
    const found = await client.query<SlotRow>(
      'SELECT plugin, slot_type, database, active, active_pid FROM pg_replication_slots WHERE slot_name = $1',
      [slot],
    );
    const publication = await registeredPublication(client, slot);
    const row = found.rows[0];
    if (publication === undefined)
      throw new UsageError(
        row ? `slot ${slot} was not made by caseguard watch; it is left alone` : `there is no slot ${slot}; nothing to drop`,
      );
    if (row?.active) throw new BusyError(`slot ${slot} is in use by process ${row.active_pid ?? '?'}; stop that watch first`);
    return { slot, publication, slotExists: Boolean(row) };
  });
}

/** Drops the slot, its registration, and the publication where watch made it and no other slot follows it. */
export async function dropSlot(database: Database, slot: string): Promise<DropResult> {
  return database.db.transaction(async (tx) => {
    const reg = await tx.execute<{ publication: string; created_publication: boolean }>(
      sql`DELETE FROM caseguard.watch_slots WHERE slot_name = ${slot} RETURNING publication, created_publication`,
    );
    const { publication, created_publication: created } = reg.rows[0] ?? { publication: '', created_publication: false };
    const dropped = await tx.execute(sql`SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = ${slot}`);
    const others = await tx.execute(sql`SELECT 1 FROM caseguard.watch_slots WHERE publication = ${publication}`);
    const dropPublication = created && others.rows.length === 0;
    if (dropPublication) await tx.execute(sql`DROP PUBLICATION IF EXISTS ${sql.identifier(publication)}`);
    return { slot, publication, droppedSlot: dropped.rows.length > 0, droppedPublication: dropPublication };
  });
}

export interface SlotLag {
  /** WAL the slot keeps the server from recycling (from its restart_lsn), in bytes. */
  retainedBytes: number;
  /** WAL not yet acknowledged (from its confirmed_flush_lsn), in bytes. */
  unconfirmedBytes: number;
}

export async function readSlotLag(database: Database, slot: string): Promise<SlotLag | undefined> {
  const r = await database.pool.query<{ retained: string | null; unconfirmed: string | null }>(
    `SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::bigint AS retained,
            pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)::bigint AS unconfirmed
       FROM pg_replication_slots WHERE slot_name = $1`,
    [slot],
  );
  const row = r.rows[0];
  return row ? { retainedBytes: Number(row.retained ?? 0), unconfirmedBytes: Number(row.unconfirmed ?? 0) } : undefined;
}
