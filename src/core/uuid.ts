import { sql, type SQL } from 'drizzle-orm';

/**
 * uuid spellings as PostgreSQL's uuid input accepts them: 32 hex digits in either case, a hyphen
 * allowed after any group of four digits but the last, the whole optionally in braces. Nothing
 * else: no surrounding whitespace, no other punctuation.
 */
const UUID_SPELLING = /^(?:\{[0-9a-f]{4}(?:-?[0-9a-f]{4}){7}\}|[0-9a-f]{4}(?:-?[0-9a-f]{4}){7})$/i;
const CANONICAL = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** The same pattern for PostgreSQL's `~*` operator (works on 13 and later). */
export const UUID_SPELLING_SQL = '^(\\{[0-9a-f]{4}(-?[0-9a-f]{4}){7}\\}|[0-9a-f]{4}(-?[0-9a-f]{4}){7})$';

/** Whether PostgreSQL would accept this text as a uuid. */
export function isUuidSpelling(text: string): boolean {
  return UUID_SPELLING.test(text);
}

/** Whether this is already the canonical spelling (what uuid::text returns). */
export function isCanonicalUuid(text: string): boolean {
  return CANONICAL.test(text);
}

/** The canonical spelling of an accepted uuid spelling, or undefined when it is not a uuid. */
export function canonicalUuid(text: string): string | undefined {
  if (!isUuidSpelling(text)) return undefined;
  const hex = text.replace(/[{}-]/g, '').toLowerCase();
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/** PostgreSQL 16 added pg_input_is_valid: the server's own uuid input, without an error. */
const HAS_INPUT_IS_VALID = 160000;

/**
 * SQL for the uuid a text names, or NULL when it is no uuid. On PostgreSQL 16 and later the
 * server's own check (pg_input_is_valid, about 4x cheaper); before that, the regular expression
 * above, which accepts exactly what uuid input accepts.
 */
export function uuidOrNull(text: SQL, serverVersionNum: number): SQL {
  const valid = serverVersionNum >= HAS_INPUT_IS_VALID ? sql`pg_input_is_valid(${text}, 'uuid')` : sql`${text} ~* ${UUID_SPELLING_SQL}`;
  return sql`CASE WHEN ${valid} THEN (${text})::uuid END`;
}
