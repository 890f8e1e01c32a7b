/**
 * The baseline of the simulate section: the intake's answer transaction run by pgbench (the
 * system's, where installed) at the same concurrency on the same server, and the same SQL
 * through a bare pg pool. The shape: begin; the per-user advisory lock; the read of the intake
 * with its case check; the update of progress and the insert of memory; commit.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';

const run = promisify(execFile);
const PREFIX = 'pgb-';

/** Seeds `users` intakes in progress, each with its case, for the baseline to work on. */
export async function seedBaselineUsers(pool, users) {
  await pool.query(
    `INSERT INTO mega_agent.cases (case_id, user_id, title, status)
     SELECT gen_random_uuid(), $1 || g, 'Intake Session', 'intake' FROM generate_series(1, $2) g`,
    [PREFIX, users],
  );
  await pool.query(
    `INSERT INTO mega_agent.case_intake_progress (user_id, case_id, current_block, current_step)
     SELECT user_id, case_id::text, 'contact', 0 FROM mega_agent.cases WHERE user_id LIKE $1 || '%'`,
    [PREFIX],
  );
  await pool.query('ANALYZE mega_agent.cases, mega_agent.case_intake_progress');
}

export async function removeBaselineUsers(pool) {
  for (const table of ['case_memory', 'case_intake_progress', 'cases']) {
    await pool.query(`DELETE FROM mega_agent.${table} WHERE user_id LIKE $1 || '%'`, [PREFIX]);
  }
}

/** The statements of one answer, with $1 the user id and $2 the case id read by the second. */
function statements(lockNamespace, uuidPattern) {
  return {
    lock: `SELECT pg_advisory_xact_lock(${lockNamespace}, hashtext($1))`,
    read: `SELECT p.user_id, p.case_id, p.current_block, p.current_step, p.completed_blocks, p.answers, p.status,
                  EXISTS (SELECT 1 FROM mega_agent.cases c
                           WHERE c.case_id = CASE WHEN p.case_id ~* '${uuidPattern}' THEN p.case_id::uuid END) AS case_found
             FROM mega_agent.case_intake_progress p
            WHERE p.user_id = $1 AND p.status = 'in_progress'
            ORDER BY p.updated_at DESC LIMIT 1`,
    write: `WITH saved AS (
              UPDATE mega_agent.case_intake_progress
                 SET answers = answers || jsonb_build_object('full_name', 'Bench User'), current_step = 1, updated_at = now()
               WHERE user_id = $1 AND case_id = $2 RETURNING 1)
            INSERT INTO mega_agent.case_memory (case_id, user_id, kind, content, created_at)
            SELECT $2, $1, 'intake_answer', '{"answer":"Bench User"}'::jsonb, now() FROM saved`,
  };
}

/**
 * pgbench's script of the same transaction (\gset carries the case id to the write, as a quoted
 * literal: pgbench's default protocol puts variables into the text).
 */
function pgbenchScript(sqls, users) {
  const bind = (text) => text.replace(/\$1/g, `'${PREFIX}' || :n`).replace(/\$2/g, ':case_literal').replace(/\s+/g, ' ').trim();
  return [
    `\\set n random(1, ${users})`,
    'BEGIN;',
    `${bind(sqls.lock)};`,
    `${bind(sqls.read.replace('p.case_id,', 'quote_literal(p.case_id) AS case_literal,'))} \\gset`,
    `${bind(sqls.write)};`,
    'COMMIT;',
    '',
  ].join('\n');
}

async function pgbenchPath() {
  for (const dir of (process.env.PATH ?? '').split(':')) {
    const candidate = path.join(dir, 'pgbench');
    if (
      await fs.access(candidate, fs.constants.X_OK).then(
        () => true,
        () => false,
      )
    )
      return candidate;
  }
  return undefined;
}

/** Transactions per second of pgbench, or undefined where pgbench is not installed. */
export async function pgbenchTps({ url, users, concurrency, seconds, lockNamespace, uuidPattern }) {
  const bin = await pgbenchPath();
  if (!bin) return undefined;
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'caseguard-pgbench-'));
  try {
    const script = path.join(dir, 'answer.sql');
    await fs.writeFile(script, pgbenchScript(statements(lockNamespace, uuidPattern), users));
    const { stdout } = await run(bin, ['-n', '-c', String(concurrency), '-j', '2', '-T', String(seconds), '-f', script, url]);
    const tps = /tps = ([\d.]+) \(without initial connection time\)/.exec(stdout);
    if (!tps) throw new Error(`pgbench printed no tps:\n${stdout}`);
    return Number(tps[1]);
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
}

/** The same transaction through a bare pg pool (no drizzle, no handler logic): transactions/s. */
export async function barePoolTps({ url, users, concurrency, seconds, lockNamespace, uuidPattern }) {
  const sqls = statements(lockNamespace, uuidPattern);
  const pool = new pg.Pool({ connectionString: url, max: concurrency });
  let done = 0;
  const deadline = performance.now() + seconds * 1000;
  const worker = async (w) => {
    let n = w;
    while (performance.now() < deadline) {
      const userId = `${PREFIX}${1 + (n % users)}`;
      n += concurrency;
      const client = await pool.connect();
      try {
        await client.query('BEGIN');
        await client.query(sqls.lock, [userId]);
        const row = (await client.query(sqls.read, [userId])).rows[0];
        await client.query(sqls.write, [userId, row.case_id]);
        await client.query('COMMIT');
        done++;
      } finally {
        client.release();
      }
    }
  };
  const t0 = performance.now();
  await Promise.all(Array.from({ length: concurrency }, (_, w) => worker(w)));
  const elapsed = (performance.now() - t0) / 1000;
  await pool.end();
  return done / elapsed;
}
