/**
 * watch's findings, saved in caseguard.watch_findings before the slot is acknowledged past the
 * commit that changed them: a restart loads them and resumes the slot, instead of scanning the
 * tables again. Saved for the shape they were judged in; another shape (fk add ran meanwhile)
 * means a scan.
 */
import { sql } from 'drizzle-orm';
import type { Database } from '../db/database.js';
import type { DatabaseShape } from '../db/inspect.js';
import type { Finding } from '../scan/scan.js';
import { rowKey } from './state.js';

/** What the findings depend on besides the rows: the shape, the id columns' types and the proofs. */
export function shapeSignature(shape: DatabaseShape): string {
  return JSON.stringify([shape.shape, shape.hasMemory, shape.memoryUuid, shape.hasUserContext, shape.pointerUuid, shape.proofs]);
}

/** The saved findings of a slot, when they were saved in this shape. */
export async function loadSaved(database: Database, slot: string, signature: string): Promise<Finding[] | undefined> {
  const saved = await database.pool.query<{ ok: boolean }>(
    'SELECT state_saved_at IS NOT NULL AND state_shape = $2 AS ok FROM caseguard.watch_slots WHERE slot_name = $1',
    [slot, signature],
  );
  if (!saved.rows[0]?.ok) return undefined;
  const rows = await database.pool.query<{ findings: Finding[] }>('SELECT findings FROM caseguard.watch_findings WHERE slot_name = $1', [
    slot,
  ]);
  return rows.rows.flatMap((r) => r.findings);
}

const insert = (slot: string, rows: { k: string; f: Finding[] }[]) => sql`
  INSERT INTO caseguard.watch_findings (slot_name, row_key, findings)
  SELECT ${slot}, x.k, x.f FROM jsonb_to_recordset(${JSON.stringify(rows)}::jsonb) AS x(k text, f jsonb)`;

/** Every finding, replacing what was saved (after a full scan). */
export async function saveAll(database: Database, slot: string, findings: readonly Finding[], signature: string): Promise<void> {
  const byRow = new Map<string, Finding[]>();
  for (const f of findings) byRow.set(rowKey(f), [...(byRow.get(rowKey(f)) ?? []), f]);
  await database.db.transaction(async (tx) => {
    await tx.execute(sql`DELETE FROM caseguard.watch_findings WHERE slot_name = ${slot}`);
    await tx.execute(
      insert(
        slot,
        [...byRow].map(([k, f]) => ({ k, f })),
      ),
    );
    await tx.execute(sql`UPDATE caseguard.watch_slots SET state_saved_at = now(), state_shape = ${signature} WHERE slot_name = ${slot}`);
  });
}

/** The rows whose findings changed (none left: the row is removed). */
export async function saveRows(database: Database, slot: string, rows: ReadonlyMap<string, Finding[]>): Promise<void> {
  if (rows.size === 0) return;
  await database.db.transaction(async (tx) => {
    await tx.execute(
      sql`DELETE FROM caseguard.watch_findings WHERE slot_name = ${slot} AND row_key = ANY(${sql.param([...rows.keys()])}::text[])`,
    );
    const kept = [...rows].filter(([, f]) => f.length > 0).map(([k, f]) => ({ k, f }));
    if (kept.length > 0) await tx.execute(insert(slot, kept));
  });
}
