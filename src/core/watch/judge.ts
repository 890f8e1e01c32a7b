/**
 * Judging rows: scan's own query over a Domain (or everything), in one REPEATABLE READ, READ ONLY
 * snapshot. The slot may send a commit a moment before a new snapshot sees it (the commit record
 * is flushed before the transaction leaves the server's list of running ones), so a judgement
 * after commits first checks, in its own snapshot, that every one of their transactions is
 * visible, and takes a new snapshot until they are.
 */
import { sql } from 'drizzle-orm';
import { drizzle } from 'drizzle-orm/node-postgres';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Database } from '../db/database.js';
import { destroyConnection, withinDeadline } from '../db/deadline.js';
import type { DatabaseShape } from '../db/inspect.js';
import { withClient } from '../db/locks.js';
import { allFindings, type Domain } from '../scan/queries.js';
import { sourcesOf, type Finding } from '../scan/scan.js';

export interface JudgeOptions {
  /** Read in this exported snapshot (the new slot's). */
  snapshot?: string;
  /** The (32-bit) ids of the transactions the judgement must see. */
  xids?: readonly number[];
  /** statement_timeout of a domain's judgement ('0': none); a full scan has none. */
  statementTimeout: string;
  /** A domain's judgement ends within this (a silent network); a full scan takes what it takes. */
  deadlineMs: number;
}

/** Whether every one of these transactions had ended when the transaction's snapshot was taken. */
const ALL_VISIBLE = `
  WITH s AS (SELECT pg_current_snapshot() AS snap),
  x AS (SELECT s.snap, pg_snapshot_xmax(s.snap)::text::bigint AS xmax, unnest($1::bigint[]) AS xid FROM s)
  SELECT coalesce(bool_and(pg_visible_in_snapshot(
           (xmax - (((xmax & 4294967295) - xid + 4294967296) % 4294967296))::text::xid8, snap)), true) AS ok
    FROM x`;

export async function judge(database: Database, shape: DatabaseShape, domain: Domain | 'all', options: JudgeOptions): Promise<Finding[]> {
  return withClient(database.pool, async (client) => {
    const session = drizzle({ client });
    const once = async (): Promise<Finding[] | undefined> => {
      await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
      try {
        if (options.snapshot) await client.query(`SET TRANSACTION SNAPSHOT '${options.snapshot}'`);
        if (options.xids && options.xids.length > 0) {
          const visible = await client.query<{ ok: boolean }>(ALL_VISIBLE, [options.xids]);
          if (!visible.rows[0]?.ok) {
            await client.query('ROLLBACK');
            return undefined;
          }
        }
        const timeout = domain === 'all' ? '0' : options.statementTimeout;
        await session.execute(sql`SELECT set_config('statement_timeout', ${timeout}, true)`);
        const findings = allFindings(sourcesOf(shape), {}, domain === 'all' ? undefined : domain);
        const r = await session.execute<Omit<Finding, 'memory_id'> & { memory_id: string | null } & Record<string, unknown>>(sql`
          SELECT check_id AS check, source_table AS table, user_id, case_id, canonical_id, owner, memory_id, detail FROM (${findings}) f`);
        await client.query('COMMIT');
        return r.rows.map((f) => ({ ...f, memory_id: f.memory_id === null ? null : Number(f.memory_id) }));
      } catch (error) {
        await client.query('ROLLBACK').catch(() => undefined);
        throw error;
      }
    };
    const work = async () => {
      for (let wait = 1; ; wait = Math.min(wait * 2, 50)) {
        const found = await once();
        if (found) return found;
        await sleep(wait);
      }
    };
    return domain === 'all' ? work() : withinDeadline(work(), options.deadlineMs, () => destroyConnection(client));
  });
}
