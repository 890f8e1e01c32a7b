/**
 * The plan as a script psql runs to the same end state as `fk add`:
 *   caseguard fk plan > plan.sql && psql -v ON_ERROR_STOP=1 -f plan.sql
 * Each transactional step is a DO block that skips itself when done and retries its locks on the
 * same schedule as fk add (growing lock_timeout, deadlocks retried, a budget); the backfill
 * commits batch by batch inside its DO block; CONCURRENTLY statements run as they are (they
 * cannot run inside a transaction). Stopped midway? `caseguard fk plan` again starts where the
 * database is.
 */
import type { Reference } from './names.js';
import type { FkTiming } from './retry.js';
import type { FkStep } from './steps.js';

type PlannedStep = Omit<FkStep, 'done'> & { done: boolean; reference: Reference };

/** A transactional step: its statements in a block that skips itself when done and retries its locks. */
function retryingBlock(step: PlannedStep, n: number, timing: FkTiming): string[] {
  const statements = step.statements.map((s) => `      ${s.replace(/\n/g, '\n      ')};`);
  return [
    'DO $caseguard$',
    'DECLARE',
    '  cg_attempt int := 0;',
    '  cg_started timestamptz := clock_timestamp();',
    '  cg_timeout_ms int;',
    'BEGIN',
    `  IF ${step.doneSql} THEN`,
    `    RAISE NOTICE 'step ${n} ${step.id}: done already; skipped';`,
    '    RETURN;',
    '  END IF;',
    '  LOOP',
    `    cg_timeout_ms := least(${timing.maxLockTimeoutMs}, round(${timing.lockTimeoutMs} * 1.5 ^ cg_attempt))::int;`,
    '    BEGIN',
    "      PERFORM set_config('lock_timeout', cg_timeout_ms || 'ms', true);",
    ...statements,
    '      EXIT;',
    '    EXCEPTION WHEN lock_not_available OR deadlock_detected THEN',
    '      -- the attempt is rolled back whole, its locks released',
    '      cg_attempt := cg_attempt + 1;',
    `      IF cg_attempt >= ${timing.maxAttempts} OR clock_timestamp() - cg_started > interval '${timing.retryBudgetMs} milliseconds' THEN`,
    `        RAISE EXCEPTION 'step ${n} ${step.id} could not get its locks in % attempt(s); nothing of it was applied; run caseguard fk plan again later', cg_attempt`,
    "          USING ERRCODE = 'lock_not_available';",
    '      END IF;',
    `      RAISE NOTICE 'step ${n} ${step.id}: no lock within % ms (attempt %); retrying', cg_timeout_ms, cg_attempt;`,
    '      PERFORM pg_sleep(cg_timeout_ms * (0.5 + random()) / 1000.0);',
    '    END;',
    '  END LOOP;',
    'END',
    '$caseguard$;',
  ];
}

/** The backfill: keyset batches over the table's key, each committed on its own (a DO block may COMMIT since PostgreSQL 11). */
function backfillBlock(step: PlannedStep, n: number, timing: FkTiming, batchSize: number): string[] {
  const ref = step.reference;
  const keys = ref.key.map((k) => k.name).join(', ');
  const vars = ref.key.map((k) => `cg_${k.name}`);
  return [
    'DO $caseguard$',
    'DECLARE',
    ...ref.key.map((k) => `  cg_${k.name} ${k.type} := ${k.type === 'bigint' ? '-9223372036854775808' : "''"};`),
    'BEGIN',
    `  IF ${step.doneSql} THEN`,
    `    RAISE NOTICE 'step ${n} ${step.id}: done already; skipped';`,
    '    RETURN;',
    '  END IF;',
    `  PERFORM set_config('lock_timeout', '${timing.maxLockTimeoutMs}ms', false);`,
    '  LOOP',
    '    WITH b AS (',
    `      SELECT ${keys} FROM ${ref.qualified}`,
    `       WHERE (${keys}) > (${vars.join(', ')})`,
    `       ORDER BY ${keys} LIMIT ${batchSize}`,
    '    ), filled AS (',
    `      UPDATE ${ref.qualified} p SET ${ref.shadow} = p.${ref.column}::uuid`,
    `        FROM b WHERE ${ref.key.map((k) => `p.${k.name} = b.${k.name}`).join(' AND ')} AND p.${ref.shadow} IS NULL AND p.${ref.column} IS NOT NULL`,
    '      RETURNING 1',
    '    )',
    `    SELECT ${ref.key.map((k) => `b.${k.name}`).join(', ')} INTO ${vars.join(', ')} FROM b ORDER BY ${ref.key.map((k) => `b.${k.name} DESC`).join(', ')} LIMIT 1;`,
    '    EXIT WHEN NOT FOUND;',
    '    COMMIT;',
    '  END LOOP;',
    'END',
    '$caseguard$;',
  ];
}

export function planScript(input: { strategy: string; steps: PlannedStep[]; timing: FkTiming; batchSize: number }): string {
  const { steps, timing } = input;
  const lines: string[] = [
    `-- caseguard fk add --strategy ${input.strategy} (${[...new Set(steps.map((s) => s.reference.id))].join(', ')}): ${steps.filter((s) => !s.done).length} of ${steps.length} steps to run`,
    '-- Run it as: psql -v ON_ERROR_STOP=1 -f plan.sql   (not inside a transaction: each step commits on its own)',
    `-- Locks: each step tries with lock_timeout ${timing.lockTimeoutMs}ms, 1.5 times longer each retry up to ${timing.maxLockTimeoutMs}ms,`,
    `-- for at most ${timing.maxAttempts} attempts or ${Math.round(timing.retryBudgetMs / 1000)} s; a deadlock is retried like a lock timeout.`,
    '-- Stopped midway? Run caseguard fk plan again: it starts where the database is.',
    `SET statement_timeout = '${timing.statementTimeout ?? '0'}';`,
    `SET lock_timeout = '${timing.maxLockTimeoutMs}ms';`,
  ];
  for (const [i, step] of steps.entries()) {
    const n = i + 1;
    lines.push(
      '',
      `-- step ${n}: ${step.id}${step.done ? ' (done; skipped)' : ''}: ${step.title}`,
      `-- lock: ${step.lock}`,
      `-- meanwhile: ${step.effect}`,
    );
    if (step.done) continue;
    for (const suppressed of Object.values(step.suppress ?? {}))
      lines.push(`-- on purpose (squawk ${suppressed.rule}): ${suppressed.reason}`);
    if (step.mode === 'batches') lines.push(...backfillBlock(step, n, timing, input.batchSize));
    else if (step.mode === 'concurrent') {
      // one attempt that waits for older transactions up to the step's budget (see retry.ts, runConcurrent)
      lines.push(
        `SET lock_timeout = '${Math.round(timing.retryBudgetMs)}ms';`,
        ...step.statements.map((s) => `${s};`),
        `SET lock_timeout = '${timing.maxLockTimeoutMs}ms';`,
      );
    } else lines.push(...retryingBlock(step, n, timing));
  }
  return `${lines.join('\n')}\n`;
}
