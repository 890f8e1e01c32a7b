/**
 * The quarantine: full copies of rows a run moved aside (reason, run, the whole row as jsonb).
 * Putting them back is restore.ts.
 */
import { and, count, eq, isNull } from 'drizzle-orm';
import type { Executor } from '../db/database.js';
import type { ReferencingTable } from '../references.js';
import { quarantine } from '../schema/journal.js';

/** A quarantined row as its table row says (timestamps as ISO strings). */
export type QuarantinedRow = Omit<typeof quarantine.$inferSelect, 'sourceTable' | 'rowData' | 'quarantinedAt' | 'restoredAt'> & {
  sourceTable: ReferencingTable;
  rowData: Record<string, unknown>;
  quarantinedAt: string;
  restoredAt: string | null;
};

export async function listQuarantine(
  db: Executor,
  options: { runId?: number; includeRestored: boolean; limit: number },
): Promise<{ rows: QuarantinedRow[]; total: number }> {
  const filter = and(
    options.runId === undefined ? undefined : eq(quarantine.runId, options.runId),
    options.includeRestored ? undefined : isNull(quarantine.restoredAt),
  );
  const [total] = await db.select({ n: count() }).from(quarantine).where(filter);
  const rows = await db.select().from(quarantine).where(filter).orderBy(quarantine.quarantineId).limit(options.limit);
  return { rows: rows.map(toRow), total: total?.n ?? 0 };
}

export function toRow(r: typeof quarantine.$inferSelect): QuarantinedRow {
  return {
    ...r,
    sourceTable: r.sourceTable as ReferencingTable,
    rowData: r.rowData as Record<string, unknown>,
    quarantinedAt: r.quarantinedAt.toISOString(),
    restoredAt: r.restoredAt?.toISOString() ?? null,
  };
}
