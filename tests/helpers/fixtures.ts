/**
 * A damaged database for scan and recover tests, with healthy control rows beside every kind of
 * damage. The ids are fixed so tests can name them; `expected` says what each check must find.
 */
import type pg from 'pg';

export const id = (n: number) => `abcdef00-0000-4000-a000-${String(n).padStart(12, '0')}`;
const nohyphen = (u: string) => u.replace(/-/g, '');
const every4 = (u: string) => nohyphen(u).match(/.{4}/g)!.join('-');

/** Hostile but legitimate user ids: they must come out of every format intact. */
export const HOSTILE_USER = "o'neil\t\"robert'); DROP TABLE mega_agent.cases; --\nzoë 🚀,x";

export const F = {
  // healthy controls: cases 1-5, canonical progress, memory, pointers
  controls: [1, 2, 3, 4, 5].map((n) => ({ user: `control-${n}`, caseId: id(n) })),
  orphanCanonical: { user: 'u-orphan', caseId: id(100) },
  orphanUpper: { user: 'u-orphan-upper', caseId: id(101).toUpperCase() },
  orphanHostile: { user: HOSTILE_USER, caseId: id(102) },
  invalid: [
    { user: 'u-invalid-1', caseId: 'not-a-uuid' },
    { user: 'u-invalid-2', caseId: ` ${id(1)}` },
    { user: 'u-invalid-3', caseId: `${nohyphen(id(1))}0` },
    { user: 'u-invalid-4', caseId: id(1).replace('4000', '4g00') },
  ],
  // existing cases 10-13 under accepted non-canonical spellings
  spellings: [
    { user: 'owner-10', caseId: id(10).toUpperCase(), canonical: id(10) },
    { user: 'owner-11', caseId: `{${id(11)}}`, canonical: id(11) },
    { user: 'owner-12', caseId: nohyphen(id(12)), canonical: id(12) },
    { user: 'owner-13', caseId: every4(id(13)), canonical: id(13) },
  ],
  // one user, case 20, in two spellings
  duplicate: { user: 'u-dup', canonical: id(20), other: `{${id(20).toUpperCase()}}` },
  // u-thief's progress names case 30 of owner-30
  mismatch: { user: 'u-thief', owner: 'owner-30', caseId: id(30) },
  memoryOrphan: { user: 'u-mem', caseId: id(200) },
  memoryInvalid: { user: 'u-mem-bad', caseId: 'garbage' },
  memorySpelling: { user: 'owner-10', caseId: id(10).toUpperCase() },
  pointerDangling: { user: 'u-pointer', caseId: id(300) },
  pointerInvalid: { user: 'u-pointer-bad', caseId: 'nope' },
  pointerSpelling: { user: 'owner-11', caseId: `{${id(11)}}` },
};

export const expected = {
  orphaned_progress: 3,
  invalid_case_id: 4,
  noncanonical_case_id: 4 + 1 + 1 + 1, // progress spellings, duplicate's other spelling, memory, pointer
  duplicate_progress: 2,
  orphaned_memory: 2,
  dangling_active_case: 2,
  owner_mismatch: 1,
  /** 100, 101, 102 (progress), 200 (memory), 300 (pointer). */
  missingCases: 5,
};

async function insertCase(pool: pg.Pool, caseId: string, user: string) {
  await pool.query("INSERT INTO mega_agent.cases (case_id, user_id, title) VALUES ($1, $2, 'Fixture')", [caseId, user]);
}
async function insertProgress(pool: pg.Pool, user: string, caseId: string) {
  await pool.query("INSERT INTO mega_agent.case_intake_progress (user_id, case_id, current_block) VALUES ($1, $2, 'contact')", [
    user,
    caseId,
  ]);
}
async function insertMemory(pool: pg.Pool, user: string, caseId: string) {
  await pool.query("INSERT INTO mega_agent.case_memory (case_id, user_id, kind, content) VALUES ($1, $2, 'note', '{}')", [caseId, user]);
}
async function insertPointer(pool: pg.Pool, user: string, caseId: string) {
  await pool.query('INSERT INTO mega_agent.bot_user_context (user_id, active_case_id) VALUES ($1, $2)', [user, caseId]);
}

/** Healthy rows only. */
export async function seedControls(pool: pg.Pool): Promise<void> {
  for (const c of F.controls) {
    await insertCase(pool, c.caseId, c.user);
    await insertProgress(pool, c.user, c.caseId);
    await insertMemory(pool, c.user, c.caseId);
    await insertPointer(pool, c.user, c.caseId);
  }
}

/** Controls plus every kind of damage (legacy shape). */
export async function seedDamage(pool: pg.Pool): Promise<void> {
  await seedControls(pool);
  for (const o of [F.orphanCanonical, F.orphanUpper, F.orphanHostile]) await insertProgress(pool, o.user, o.caseId);
  for (const i of F.invalid) await insertProgress(pool, i.user, i.caseId);
  for (const s of F.spellings) {
    await insertCase(pool, s.canonical, s.user);
    await insertProgress(pool, s.user, s.caseId);
  }
  await insertCase(pool, F.duplicate.canonical, F.duplicate.user);
  await insertProgress(pool, F.duplicate.user, F.duplicate.canonical);
  await insertProgress(pool, F.duplicate.user, F.duplicate.other);
  await insertCase(pool, F.mismatch.caseId, F.mismatch.owner);
  await insertProgress(pool, F.mismatch.owner, F.mismatch.caseId);
  await insertProgress(pool, F.mismatch.user, F.mismatch.caseId);
  await insertMemory(pool, F.memoryOrphan.user, F.memoryOrphan.caseId);
  await insertMemory(pool, F.memoryInvalid.user, F.memoryInvalid.caseId);
  await insertMemory(pool, F.memorySpelling.user, F.memorySpelling.caseId);
  await insertPointer(pool, F.pointerDangling.user, F.pointerDangling.caseId);
  await insertPointer(pool, F.pointerInvalid.user, F.pointerInvalid.caseId);
  await insertPointer(pool, F.pointerSpelling.user, F.pointerSpelling.caseId);
}
