/**
 * caseguard watch: follows a logical replication slot (pgoutput) on mega_agent's tables and
 * keeps every finding of the seven checks up to date, the missing cases exactly.
 *
 * A consistent start: a new slot exports a snapshot as it is made, and the first scan reads in
 * it, so every change after that scan comes from the slot and none before it. A slot that
 * exists is resumed where it was last acknowledged, after a scan of now: judging a row again
 * gives the same answer however often it is done, so the changes replayed meanwhile count
 * nothing twice. The slot is acknowledged only up to commits already applied: a process killed
 * at any point misses nothing when it starts again.
 */
import pg from 'pg';
import { LogicalReplicationService, PgoutputPlugin, type Pgoutput } from 'pg-logical-replication';
import type { Database } from '../db/database.js';
import { destroyConnection, withinDeadline } from '../db/deadline.js';
import { inspectDatabase } from '../db/inspect.js';
import { expectedServerError, safeMessage, sqlStateOf } from '../db/sqlstate.js';
import { BusyError, ConnectionError, SchemaError, toError } from '../errors.js';
import type { Logger } from '../logger.js';
import type { Domain } from '../scan/queries.js';
import { judge } from './judge.js';
import { checkResults, gateSummary, proofsOf, type ScanReport } from '../scan/scan.js';
import { domainOf, emptyBatch, isEmpty, lsnValue, mergeCommit, noteChange, type Batch } from './changes.js';
import { prepareWatch, readSlotLag, type SlotLag, type WatchSetup } from './slot.js';
import { loadSaved, saveAll, saveRows, shapeSignature } from './saved.js';
import { FindingsState, type StateChange } from './state.js';

export interface WatchOptions {
  log: Logger;
  signal: AbortSignal;
  /** Warn (watch.slot_lag) while the slot retains more WAL than this. */
  maxSlotLagBytes: number;
  /** How often the slot's lag is read. */
  lagIntervalMs?: number;
  /** A connection with nothing received for this long (the server is asked every 10 s) is lost. */
  networkTimeoutMs: number;
  /** statement_timeout of each judgement, PostgreSQL syntax; '0' for none. */
  statementTimeout: string;
  /** After each applied batch: for metrics. */
  onApplied?: (applied: Applied) => void;
  onLag?: (lag: SlotLag) => void;
}

export interface Applied extends StateChange {
  commits: number;
  changes: number;
  /** From the batch's first commit to its findings being applied. */
  delayMs: number;
}

export interface WatchStarted {
  slot: string;
  created: boolean;
  /** What the findings came from: the new slot's snapshot, those saved at the last stop, or a scan of now. */
  from: 'snapshot' | 'saved' | 'scan';
  /** Where the stream starts: the new slot's consistent point, or where the slot was acknowledged. */
  startLsn: string;
  findings: number;
  missingCases: number;
}

export interface WatchEnd {
  commits: number;
  changes: number;
  detected: number;
  resolved: number;
}

export interface Watcher {
  started: WatchStarted;
  /** The checks as they stand: what scan would report now, from what watch holds. */
  report(databaseName: string): ScanReport;
  /** Resolves when the signal stopped it; rejects when the connection was lost or a judgement failed. */
  done: Promise<WatchEnd>;
}

const STATUS_EVERY_MS = 10_000;
const SNAPSHOT_NAME = /^[0-9A-F]+-[0-9A-F]+(-[0-9]+)?$/i;

/** The settings of the pool's server, for a replication connection to the same one. */
function replicationConfig(database: Database): pg.ClientConfig {
  const o = database.pool.options as pg.PoolConfig & Record<string, unknown>;
  const { max: _max, idleTimeoutMillis: _idle, pipeline: _pipeline, ...config } = o;
  // the pool keeps the password out of its enumerable options (so it is never logged)
  return { ...config, password: o.password, application_name: `${database.identity} watch` };
}

function failure(error: unknown): Error {
  if (sqlStateOf(error) === '55006')
    return new BusyError(`${safeMessage(error)}: another caseguard watch follows this slot; one watch per slot`);
  if (sqlStateOf(error) === '53400')
    return new SchemaError(`${safeMessage(error)}: every replication slot is in use; raise max_replication_slots or drop one`);
  if (sqlStateOf(error) === '42710') return new BusyError(`${safeMessage(error)}: another caseguard watch made this slot just now`);
  return expectedServerError(error) ?? toError(error);
}

export async function startWatch(database: Database, setup: WatchSetup, options: WatchOptions): Promise<Watcher> {
  const { log } = options;
  let shape = await inspectDatabase(database.db);
  let proofs = proofsOf(shape);
  const state = new FindingsState();

  const judgeNow = (domain: Domain | 'all', more: { snapshot?: string; xids?: readonly number[] } = {}) =>
    judge(database, shape, domain, { ...more, statementTimeout: options.statementTimeout, deadlineMs: options.networkTimeoutMs });

  // The first findings: a scan in the new slot's exported snapshot, or (a slot that exists) those
  // saved before its last acknowledgement, or else a scan of now. Saved before streaming starts.
  let startLsn = '0/00000000';
  let from: WatchStarted['from'] = 'snapshot';
  if (!setup.slotExists) {
    await prepareWatch(database, setup);
    const maker = new pg.Client({ ...replicationConfig(database), replication: 'database' } as pg.ClientConfig);
    maker.on('error', () => undefined);
    try {
      await maker.connect();
      const made = await maker.query<{ consistent_point: string; snapshot_name: string }>(
        `CREATE_REPLICATION_SLOT ${maker.escapeIdentifier(setup.slot)} LOGICAL pgoutput EXPORT_SNAPSHOT`,
      );
      const { consistent_point: point, snapshot_name: snapshot } = made.rows[0]!;
      if (!SNAPSHOT_NAME.test(snapshot)) throw new Error(`unexpected snapshot name from the server: ${snapshot}`);
      state.replace('all', await judgeNow('all', { snapshot }));
      await saveAll(database, setup.slot, state.all(), shapeSignature(shape));
      startLsn = point;
    } catch (error) {
      throw failure(error);
    } finally {
      await maker.end().catch(() => undefined);
    }
  } else {
    const saved = await loadSaved(database, setup.slot, shapeSignature(shape));
    from = saved ? 'saved' : 'scan';
    state.replace('all', saved ?? (await judgeNow('all')));
    if (!saved) await saveAll(database, setup.slot, state.all(), shapeSignature(shape));
  }

  const service = new LogicalReplicationService(replicationConfig(database), {
    acknowledge: { auto: false, timeoutSeconds: 0 },
    flowControl: { enabled: false },
  });
  const plugin = new PgoutputPlugin({ protoVersion: 1, publicationNames: [setup.publication] });

  let pending = emptyBatch();
  let open: Batch | undefined;
  let judging = false;
  /** Everything up to here is applied: what the slot may be told. */
  let safeLsn = startLsn;
  let lastHeard = Date.now();
  const relations = new Map<number, string>();
  const totals: WatchEnd = { commits: 0, changes: 0, detected: 0, resolved: 0 };

  let wake: () => void = () => undefined;
  let lost = false;
  let reject: (error: Error) => void = () => undefined;
  const failed = new Promise<never>((_, r) => (reject = r));
  const fail = (error: Error) => {
    lost = true;
    reject(error);
  };
  failed.catch(() => undefined);
  let stopping = false;

  const acknowledge = (lsn: string, ping = false) => {
    if (lsnValue(lsn) > lsnValue(safeLsn)) safeLsn = lsn;
    void service.acknowledge(safeLsn, ping).catch(() => undefined);
  };

  service.on('error', (error: Error) => fail(failure(error)));
  service.on('heartbeat', (lsn: string, _at: number, shouldRespond: boolean) => {
    lastHeard = Date.now();
    // with nothing received and not applied, all WAL up to here is done with
    if (!open && isEmpty(pending) && !judging && lsnValue(lsn) > lsnValue(safeLsn)) safeLsn = lsn;
    if (shouldRespond) acknowledge(safeLsn);
  });
  service.on('data', (lsn: string, message: Pgoutput.Message) => {
    lastHeard = Date.now();
    switch (message.tag) {
      case 'begin':
        open = emptyBatch();
        open.xids.add(message.xid >>> 0);
        return;
      case 'relation': {
        const signature = message.columns.map((c) => `${c.name}:${c.typeOid}`).join(',');
        const before = relations.get(message.relationOid);
        relations.set(message.relationOid, signature);
        if (before !== undefined && before !== signature) (open ?? pending).reinspect = (open ?? pending).rescan = true;
        return;
      }
      case 'insert':
      case 'update':
      case 'delete':
        if (open) noteChange(open, message);
        return;
      case 'truncate':
        if (open) open.rescan = true;
        return;
      case 'commit':
        if (open) mergeCommit(pending, open, lsn, Number(message.commitTime as bigint) / 1000);
        open = undefined;
        wake();
        return;
      default:
        return;
    }
  });

  const apply = async (batch: Batch) => {
    if (batch.reinspect) {
      shape = await inspectDatabase(database.db);
      proofs = proofsOf(shape);
    }
    const domain = batch.rescan ? 'all' : domainOf(batch, state);
    const change = state.replace(domain, await judgeNow(domain, { xids: [...batch.xids] }));
    // saved before it is logged and acknowledged: a restart neither misses it nor tells it twice
    if (domain === 'all') await saveAll(database, setup.slot, state.all(), shapeSignature(shape));
    else await saveRows(database, setup.slot, change.rows);
    const delayMs = Date.now() - (batch.firstCommitMs ?? Date.now());
    for (const f of change.detected)
      log.warn(
        { event: 'watch.orphan_detected', check: f.check, table: f.table, user_id: f.user_id, case_id: f.case_id, delay_ms: delayMs },
        `${f.table} row of user ${f.user_id} names case ${f.case_id}, which does not exist`,
      );
    for (const f of change.resolved)
      log.info(
        { event: 'watch.orphan_resolved', check: f.check, table: f.table, user_id: f.user_id, case_id: f.case_id, delay_ms: delayMs },
        `${f.table} row of user ${f.user_id} no longer names a missing case (${f.case_id})`,
      );
    totals.commits += batch.commits;
    totals.changes += batch.changes;
    totals.detected += change.detected.length;
    totals.resolved += change.resolved.length;
    options.onApplied?.({ ...change, commits: batch.commits, changes: batch.changes, delayMs });
    if (batch.lsn) acknowledge(batch.lsn);
  };

  const loop = async (): Promise<void> => {
    while (!stopping) {
      if (isEmpty(pending)) {
        await new Promise<void>((resolve) => (wake = resolve));
        continue;
      }
      const batch = pending;
      pending = emptyBatch();
      judging = true;
      try {
        await apply(batch);
      } catch (error) {
        throw failure(error);
      } finally {
        judging = false;
      }
    }
  };

  const ready = new Promise<void>((resolve) => service.once('start', () => resolve()));
  const streaming = service.subscribe(plugin, setup.slot, startLsn);
  streaming.then(
    () => !stopping && fail(new ConnectionError('the server ended the replication stream; rerun caseguard watch')),
    (error: unknown) => fail(failure(error)),
  );
  await Promise.race([ready, failed]);
  const replicationClient = (service as unknown as { _client: pg.Client | null })._client;

  const timers = [
    setInterval(
      () => {
        if (Date.now() - lastHeard > options.networkTimeoutMs) {
          if (replicationClient) destroyConnection(replicationClient);
          fail(
            new ConnectionError(
              `nothing from the server within ${Math.round(options.networkTimeoutMs / 1000)}s: the connection went silent`,
            ),
          );
        } else acknowledge(safeLsn, true);
      },
      Math.min(STATUS_EVERY_MS, options.networkTimeoutMs / 3),
    ),
    setInterval(() => void checkLag(), options.lagIntervalMs ?? STATUS_EVERY_MS),
  ];
  let overLag = false;
  const checkLag = async () => {
    // a shape changed meanwhile (fk add: a proof, a column type) is judged again, all of it
    const now = await inspectDatabase(database.db).catch(() => shape);
    if (shapeSignature(now) !== shapeSignature(shape)) {
      pending.reinspect = pending.rescan = true;
      wake();
    }
    const lag = await readSlotLag(database, setup.slot).catch(() => undefined);
    if (!lag) return;
    options.onLag?.(lag);
    if (lag.retainedBytes > options.maxSlotLagBytes && !overLag)
      log.warn(
        { event: 'watch.slot_lag', slot: setup.slot, retained_bytes: lag.retainedBytes, max_bytes: options.maxSlotLagBytes },
        `slot ${setup.slot} retains ${lag.retainedBytes} bytes of WAL, over --max-slot-lag`,
      );
    else if (lag.retainedBytes <= options.maxSlotLagBytes && overLag)
      log.info(
        { event: 'watch.slot_lag_ok', slot: setup.slot, retained_bytes: lag.retainedBytes },
        `slot ${setup.slot} is under --max-slot-lag again`,
      );
    overLag = lag.retainedBytes > options.maxSlotLagBytes;
  };
  void checkLag();

  const stopped = new Promise<void>((resolve) => {
    if (options.signal.aborted) resolve();
    options.signal.addEventListener('abort', () => resolve(), { once: true });
  });
  const done = (async () => {
    try {
      await Promise.race([Promise.all([loop(), stopped.then(() => ((stopping = true), wake()))]), failed]);
      return { ...totals };
    } finally {
      stopping = true;
      wake();
      for (const t of timers) clearInterval(t);
      // a lost connection is cut (a polite end would wait on a silent one); a stop ends it politely, within a bound
      const cut = () => replicationClient && destroyConnection(replicationClient);
      if (lost) cut();
      await withinDeadline(service.destroy(), lost ? 100 : 5_000, cut).catch(() => undefined);
    }
  })();

  const counts = state.counts();
  const started: WatchStarted = {
    slot: setup.slot,
    created: !setup.slotExists,
    from,
    startLsn,
    findings: [...counts.values()].reduce((n, c) => n + c.count, 0),
    missingCases: state.missingCases(),
  };
  return {
    started,
    done,
    report: (databaseName) => {
      const now = state.counts();
      const checks = checkResults(shape, proofs, (id) => now.get(id));
      return {
        database: databaseName,
        schema: 'mega_agent',
        startedAt: new Date().toISOString(),
        durationMs: 0,
        shape: shape.shape,
        filters: {},
        coverage: 'complete',
        checks,
        summary: gateSummary(checks, state.missingCases(), { failOn: 'error', maxFindings: 0 }, true),
      };
    },
  };
}
