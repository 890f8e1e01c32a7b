/**
 * Applying a run's snapshot: each kind in keyset batches, one statement (one transaction) each.
 * A batch the database rejects for a row's sake (the application's constraint or trigger) never
 * takes the good rows with it: it is split in halves down to single targets, and a single
 * target that is still rejected is journaled with its SQLSTATE and message (no row values) as
 * action 'rejected'. A case a BEFORE INSERT trigger silently suppressed is journaled the same
 * way, never counted as handled meanwhile.
 */
import { sql } from 'drizzle-orm';
import type { Session } from '../db/database.js';
import { describePgError, sqlStateOf } from '../db/sqlstate.js';
import { INSERT_ITEMS } from '../journal/journal.js';
import type { Run } from '../journal/run.js';
import { batchStatement, type BatchSettings } from './batches.js';
import { isQuarantineKind, TARGET_KIND_INFO, TARGET_KINDS, targetPosition, TARGETS, type TargetKind } from './targets.js';

export interface BatchEvent {
  runId: number;
  kind: TargetKind;
  batch: number;
  taken: number;
  applied: number;
  ms: number;
  doneTotal: number;
  total: number;
}

/** What a run has done so far; kept up to date batch by batch, so a failure reports it truly. */
export interface ApplyProgress {
  applied: Record<TargetKind, number>;
  /** Targets taken by committed statements (applied, handled meanwhile, or rejected). */
  taken: number;
  /** Targets the database rejected or a trigger suppressed, journaled as 'rejected'. */
  rejected: number;
  batches: number;
  longestBatchMs: number;
}

export function emptyProgress(): ApplyProgress {
  return {
    applied: Object.fromEntries(TARGET_KINDS.map((k) => [k, 0])) as Record<TargetKind, number>,
    taken: 0,
    rejected: 0,
    batches: 0,
    longestBatchMs: 0,
  };
}

export interface ApplyContext {
  /** The run's session: the one that holds its temporary targets table. */
  db: Session;
  run: Run;
  counts: Record<TargetKind, number>;
  total: number;
  quarantine: boolean;
  batchSize: number;
  settings: BatchSettings;
  onBatch?: (event: BatchEvent) => void | Promise<void>;
}

/** A row's own fault: an integrity rule, a trigger's exception, a value that does not fit. */
function isRejection(error: unknown): boolean {
  const code = sqlStateOf(error);
  return code !== undefined && (code.startsWith('23') || code.startsWith('P0') || code.startsWith('22'));
}

/** Every kind's targets, page by page, in the run's batch loop (its checkpoint before each page). */
export async function applyTargets(ctx: ApplyContext, progress: ApplyProgress): Promise<void> {
  const pages = TARGET_KINDS.filter((kind) => ctx.quarantine || !isQuarantineKind(kind)).flatMap((kind) =>
    Array.from({ length: Math.ceil(ctx.counts[kind] / ctx.batchSize) }, (_, i) => ({ kind, afterSeq: i * ctx.batchSize })),
  );
  let next = 0;
  await ctx.run.batches(async () => {
    const page = pages[next++];
    if (!page) return false;
    await applyRange(ctx, progress, page.kind, page.afterSeq, Math.min(ctx.batchSize, ctx.counts[page.kind] - page.afterSeq));
    return true;
  });
}

/** Targets afterSeq+1 .. afterSeq+size of a kind: whole, or in halves when the database rejects one. */
async function applyRange(ctx: ApplyContext, progress: ApplyProgress, kind: TargetKind, afterSeq: number, size: number): Promise<void> {
  const t0 = performance.now();
  let row: { taken: string; applied: string; vanished: string[] | null };
  try {
    const res = await ctx.db.execute<{ taken: string; applied: string; vanished: string[] | null }>(
      batchStatement(kind, ctx.run.id, afterSeq, size, ctx.settings),
    );
    row = res.rows[0]!;
  } catch (error) {
    if (!isRejection(error)) throw error;
    if (size === 1) {
      await journalRejected(ctx, kind, afterSeq + 1, sqlStateOf(error)!, describePgError(error));
      progress.rejected++;
      progress.taken++;
      ctx.run.log.warn({ event: 'recover.target_rejected', kind, sqlstate: sqlStateOf(error) });
      return;
    }
    const half = Math.ceil(size / 2);
    await applyRange(ctx, progress, kind, afterSeq, half);
    await applyRange(ctx, progress, kind, afterSeq + half, size - half);
    return;
  }
  const ms = performance.now() - t0;
  const taken = Number(row.taken);
  const applied = Number(row.applied);
  progress.batches++;
  progress.taken += taken;
  progress.applied[kind] += applied;
  progress.longestBatchMs = Math.max(progress.longestBatchMs, ms);
  if (row.vanished && row.vanished.length > 0) await journalSuppressed(ctx, progress, row.vanished);
  const event = {
    runId: ctx.run.id,
    kind,
    batch: progress.batches,
    taken,
    applied,
    ms: Math.round(ms),
    doneTotal: progress.taken,
    total: ctx.total,
  };
  ctx.run.log.info({ event: 'recover.batch_committed', kind, batch: event.batch, rows: taken, applied, ms: event.ms });
  await ctx.onBatch?.(event);
}

async function journalRejected(ctx: ApplyContext, kind: TargetKind, seq: number, sqlstate: string, reason: string): Promise<void> {
  await ctx.db.execute(sql`
    ${INSERT_ITEMS}
    SELECT ${ctx.run.id}, 'rejected', t.check_id, ${TARGET_KIND_INFO[kind].table},
           jsonb_strip_nulls(jsonb_build_object('kind', t.kind, 'user_id', t.user_id, 'case_id', coalesce(t.canonical_id::text, t.case_id), 'memory_id', t.memory_id)),
           NULL, jsonb_build_object('sqlstate', ${sqlstate}::text, 'reason', ${reason}::text)
      FROM ${TARGETS} t WHERE t.pos = ${targetPosition(kind, seq)}::bigint`);
}

/**
 * Ids a create_case batch neither inserted nor found: looked at again now; one that exists was
 * created meanwhile (the live bot), one that does not was suppressed by a trigger.
 */
async function journalSuppressed(ctx: ApplyContext, progress: ApplyProgress, ids: string[]): Promise<void> {
  // ids are canonical uuids from the snapshot, bound as one array literal parameter
  const res = await ctx.db.execute<{ n: string }>(sql`
    WITH gone AS (
      SELECT t.* FROM ${TARGETS} t
       WHERE t.kind = 'create_case' AND t.canonical_id = ANY(${`{${ids.join(',')}}`}::uuid[])
         AND NOT EXISTS (SELECT 1 FROM mega_agent.cases c WHERE c.case_id = t.canonical_id)
    ),
    items AS (
      ${INSERT_ITEMS}
      SELECT ${ctx.run.id}, 'rejected', g.check_id, 'cases', jsonb_build_object('kind', g.kind, 'user_id', g.user_id, 'case_id', g.canonical_id::text),
             NULL, jsonb_build_object('sqlstate', NULL, 'reason', 'suppressed: a trigger on cases returned NULL, so no row was inserted')
        FROM gone g
      RETURNING 1
    )
    SELECT count(*) AS n FROM items`);
  const suppressed = Number(res.rows[0]?.n ?? 0);
  if (suppressed > 0) {
    progress.rejected += suppressed;
    ctx.run.log.warn({ event: 'recover.target_rejected', kind: 'create_case', suppressed });
  }
}
