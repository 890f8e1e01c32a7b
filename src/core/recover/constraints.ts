/**
 * The application's own rules on cases, read from the catalog before a recover writes: the
 * plan reports each as a blocker (the run cannot start as asked) or a risk (some rows may be
 * rejected; the run journals them and goes on with the rest).
 *   blocker  a required column without a default that caseguard does not fill and that no
 *            --case-value supplies; a --case-value for a column cases does not have, or whose
 *            value does not fit the column's type
 *   risk     a unique index besides the primary key, a CHECK or foreign key constraint, a
 *            trigger that fires on INSERT
 */
import { sql } from 'drizzle-orm';
import type { Executor } from '../db/database.js';
import { safeMessage, sqlStateOf } from '../db/sqlstate.js';

/** The columns a recovered case gets from caseguard itself (or from the contract's defaults). */
const FILLED = ['case_id', 'user_id', 'title', 'status', 'metadata', 'created_at', 'updated_at'];

export interface CaseConstraints {
  blockers: string[];
  risks: string[];
}

export async function inspectCaseConstraints(db: Executor, caseValues: Record<string, string>): Promise<CaseConstraints> {
  const blockers: string[] = [];
  const risks: string[] = [];
  const columns = await db.execute<{ name: string; type: string; required: boolean }>(sql`
    SELECT a.attname AS name, format_type(a.atttypid, a.atttypmod) AS type,
           a.attnotnull AND NOT a.atthasdef AND a.attidentity = '' AND a.attgenerated = '' AS required
      FROM pg_catalog.pg_attribute a
     WHERE a.attrelid = 'mega_agent.cases'::regclass AND a.attnum > 0 AND NOT a.attisdropped`);
  const byName = new Map(columns.rows.map((c) => [c.name, c]));
  for (const c of columns.rows) {
    if (c.required && !FILLED.includes(c.name) && !(c.name in caseValues)) {
      blockers.push(`cases.${c.name} (${c.type}) is required and has no default: give it with --case-value ${c.name}=VALUE`);
    }
  }
  for (const name of Object.keys(caseValues)) {
    if (!byName.has(name)) blockers.push(`--case-value ${name}: cases has no column ${name}`);
    else if (FILLED.includes(name)) blockers.push(`--case-value ${name}: caseguard sets cases.${name} itself`);
  }
  if (blockers.length === 0 && Object.keys(caseValues).length > 0) {
    try {
      await db.execute(sql`SELECT jsonb_populate_record(NULL::mega_agent.cases, ${JSON.stringify(caseValues)}::jsonb) IS NULL`);
    } catch (error) {
      if (!sqlStateOf(error)?.startsWith('22')) throw error;
      blockers.push(`a --case-value does not fit its column's type: ${safeMessage(error)}`);
    }
  }
  const rules = await db.execute<{ kind: string; name: string; definition: string }>(sql`
    SELECT 'unique index' AS kind, i.relname AS name, pg_get_indexdef(x.indexrelid) AS definition
      FROM pg_catalog.pg_index x JOIN pg_catalog.pg_class i ON i.oid = x.indexrelid
     WHERE x.indrelid = 'mega_agent.cases'::regclass AND x.indisunique AND NOT x.indisprimary
    UNION ALL
    SELECT CASE con.contype WHEN 'c' THEN 'check constraint' ELSE 'foreign key' END, con.conname, pg_get_constraintdef(con.oid)
      FROM pg_catalog.pg_constraint con
     WHERE con.conrelid = 'mega_agent.cases'::regclass AND con.contype IN ('c', 'f')
    UNION ALL
    SELECT 'trigger', t.tgname, pg_get_triggerdef(t.oid)
      FROM pg_catalog.pg_trigger t
     WHERE t.tgrelid = 'mega_agent.cases'::regclass AND NOT t.tgisinternal AND t.tgenabled <> 'D' AND (t.tgtype & 4) <> 0
     ORDER BY 1, 2`);
  for (const r of rules.rows) {
    risks.push(
      `${r.kind} ${r.name} (${r.definition}) may reject or suppress recovered cases: such rows are journaled as rejected and the run ends partial`,
    );
  }
  return { blockers, risks };
}

/** The refusal the blockers among the application's rules make, one sentence; undefined when none. */
export function constraintsRefusal(constraints: CaseConstraints): string | undefined {
  if (constraints.blockers.length === 0) return undefined;
  return `recover cannot run as asked; nothing was changed: ${constraints.blockers.join('; ')}`;
}
