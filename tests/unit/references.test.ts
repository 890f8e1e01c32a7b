/**
 * The referencing tables and the checks are described once (references.ts, checks.ts); the tuned
 * SQL of scan and recover is hand-written. These tests fail when a reference or a check is added
 * to the description without its SQL, and keep the names fk gives its objects (databases hold them).
 */
import { PgDialect } from 'drizzle-orm/pg-core';
import { describe, expect, it } from 'vitest';
import type { DatabaseShape } from '../../src/core/db/inspect.js';
import { REFERENCES } from '../../src/core/fk/names.js';
import { CASE_REFERENCES, REFERENCE_IDS } from '../../src/core/references.js';
import { targetsCte } from '../../src/core/recover/targets.js';
import { CHECKS, FK_BLOCKING_CHECKS } from '../../src/core/scan/checks.js';
import { allFindings } from '../../src/core/scan/queries.js';

const dialect = new PgDialect();
const text = (query: Parameters<PgDialect['sqlToQuery']>[0]) => dialect.sqlToQuery(query).sql;
const shape = (s: 'legacy' | 'uuid'): DatabaseShape => ({
  shape: s,
  hasMemory: true,
  hasUserContext: true,
  memoryUuid: false,
  pointerUuid: false,
  hasJournal: true,
  proofs: {},
  serverVersionNum: 180000,
});

describe('the referencing tables, described once', () => {
  it.each(['legacy', 'uuid'] as const)('every check has its SQL in the %s shape, and every reference is read by scan and recover', (s) => {
    const findings = text(allFindings({ shape: s, serverVersionNum: 180000, memory: true, pointers: true }, {}));
    for (const check of CHECKS) expect(findings, check.id).toContain(`'${check.id}'`);
    const targets = text(targetsCte(shape(s), 'keep-latest'));
    for (const ref of CASE_REFERENCES) {
      expect(findings, ref.table).toContain(`mega_agent.${ref.table}`);
      expect(targets, ref.table).toContain(`mega_agent.${ref.table}`);
    }
  });

  it('a check needs a referencing table, and one that blocks fk blocks a reference fk adds', () => {
    const tables = CASE_REFERENCES.map((r) => r.table);
    for (const check of CHECKS) expect(tables).toContain(check.needs);
    for (const check of FK_BLOCKING_CHECKS) expect(REFERENCE_IDS).toContain(check.blocks!.reference);
    // every reference fk adds has findings that would block it
    expect(new Set(FK_BLOCKING_CHECKS.map((c) => c.blocks!.reference))).toEqual(new Set(REFERENCE_IDS));
  });

  it('fk keeps the names it gave its objects in databases it changed before', () => {
    expect(
      REFERENCES.map(({ id, qualified, shadow, trigger, fn, notNullCheck, uniqueIndex, index, fk }) => ({
        id,
        qualified,
        shadow,
        trigger,
        fn,
        notNullCheck,
        uniqueIndex,
        index,
        fk,
      })),
    ).toEqual([
      {
        id: 'progress',
        qualified: 'mega_agent.case_intake_progress',
        shadow: 'case_id_uuid',
        trigger: 'caseguard_sync_case_id_uuid',
        fn: 'caseguard.case_intake_progress_sync_case_id',
        notNullCheck: 'case_intake_progress_case_id_uuid_not_null',
        uniqueIndex: 'case_intake_progress_user_id_case_id_uuid_key',
        index: 'case_intake_progress_case_id_idx',
        fk: 'fk_case_intake_progress_case',
      },
      {
        id: 'memory',
        qualified: 'mega_agent.case_memory',
        shadow: 'case_id_uuid',
        trigger: 'caseguard_sync_case_id_uuid',
        fn: 'caseguard.case_memory_sync_case_id',
        notNullCheck: 'case_memory_case_id_uuid_not_null',
        uniqueIndex: undefined,
        index: 'case_memory_case_id_idx',
        fk: 'fk_case_memory_case',
      },
      {
        id: 'active_case',
        qualified: 'mega_agent.bot_user_context',
        shadow: 'active_case_id_uuid',
        trigger: 'caseguard_sync_active_case_id_uuid',
        fn: 'caseguard.bot_user_context_sync_active_case_id',
        notNullCheck: 'bot_user_context_active_case_id_uuid_not_null',
        uniqueIndex: undefined,
        index: 'bot_user_context_active_case_id_idx',
        fk: 'fk_bot_user_context_active_case',
      },
    ]);
  });
});
