/**
 * The signals that say whether a bulk write is hurting the cluster, read in one cheap query on
 * the primary: each streaming standby's replay lag (and its byte gap, for a standby that replays
 * nothing: its replay_lag then stays at its last value), the WAL every replication slot retains
 * (inactive slots too: they can fill the disk), and the archiver's backlog where archiving is on.
 * pg_stat_replication's positions and the archive status directory need pg_monitor (or a
 * superuser); without it the signals cannot be read.
 */
import { sql } from 'drizzle-orm';
import type { Executor } from './database.js';

export interface StandbyHealth {
  name: string;
  /** replay_lag in ms; null when the standby reports none (caught up and idle, or never measured). */
  replayLagMs: number | null;
  /** WAL bytes written on the primary that the standby has not replayed. */
  replayGapBytes: number;
  /** The position replayed, to tell a standby that replays nothing (it stays put). */
  replayLsn: string | null;
}

export interface SlotHealth {
  name: string;
  active: boolean;
  /** WAL bytes the slot keeps from being removed. */
  retainedBytes: number;
}

export interface Health {
  standbys: StandbyHealth[];
  slots: SlotHealth[];
  /** WAL segments waiting for archive_command; null where archiving is off. */
  archiveBacklog: number | null;
}

/** Whether this role can read the signals: pg_monitor (or a superuser). */
export async function canReadHealth(db: Executor): Promise<boolean> {
  const r = await db.execute<{ ok: boolean }>(
    sql`SELECT (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) OR pg_has_role(current_user, 'pg_monitor', 'USAGE') AS ok`,
  );
  return Boolean(r.rows[0]?.ok);
}

/** The signals, in one query; the caller has checked canReadHealth. */
export async function readHealth(db: Executor): Promise<Health> {
  const r = await db.execute<{ standbys: StandbyHealth[] | null; slots: SlotHealth[] | null; archive_backlog: string | null }>(sql`
    SELECT
      (SELECT json_agg(json_build_object(
                'name', coalesce(nullif(s.application_name, ''), s.client_addr::text, s.pid::text),
                'replayLagMs', extract(epoch FROM s.replay_lag) * 1000,
                'replayGapBytes', coalesce(pg_wal_lsn_diff(pg_current_wal_lsn(), s.replay_lsn), 0),
                'replayLsn', s.replay_lsn::text))
         FROM pg_stat_replication s WHERE s.state = 'streaming') AS standbys,
      (SELECT json_agg(json_build_object('name', slot_name, 'active', active, 'retainedBytes', pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)))
         FROM pg_replication_slots WHERE restart_lsn IS NOT NULL) AS slots,
      CASE WHEN current_setting('archive_mode') <> 'off'
           THEN (SELECT count(*) FROM pg_ls_archive_statusdir() WHERE name LIKE '%.ready') END AS archive_backlog`);
  const row = r.rows[0]!;
  return {
    standbys: (row.standbys ?? []).map((s) => ({ ...s, replayGapBytes: Number(s.replayGapBytes) })),
    slots: (row.slots ?? []).map((s) => ({ ...s, retainedBytes: Number(s.retainedBytes) })),
    archiveBacklog: row.archive_backlog === null ? null : Number(row.archive_backlog),
  };
}
