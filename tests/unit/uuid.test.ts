import { describe, expect, it } from 'vitest';
import { canonicalUuid, isCanonicalUuid, isUuidSpelling } from '../../src/core/uuid.js';

const canonical = 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11';

describe('uuid spellings PostgreSQL accepts', () => {
  it.each([
    ['canonical', canonical],
    ['upper case', canonical.toUpperCase()],
    ['braces', `{${canonical}}`],
    ['no hyphens', canonical.replace(/-/g, '')],
    ['a hyphen every four digits', 'a0ee-bc99-9c0b-4ef8-bb6d-6bb9-bd38-0a11'],
    ['braces around upper case without hyphens', `{${canonical.replace(/-/g, '').toUpperCase()}}`],
  ])('accepts %s and canonicalises it', (_name, spelling) => {
    expect(isUuidSpelling(spelling)).toBe(true);
    expect(canonicalUuid(spelling)).toBe(canonical);
  });

  it.each([
    ['leading whitespace', ` ${canonical}`],
    ['trailing whitespace', `${canonical} `],
    ['33 hex digits', `${canonical}1`],
    ['31 hex digits', canonical.slice(0, -1)],
    ['a non-hex letter', canonical.replace('a0', 'g0')],
    ['an unbalanced brace', `{${canonical}`],
    ['a hyphen after two digits', 'a0-eebc999c0b4ef8bb6d6bb9bd380a11'],
    ['a trailing hyphen', `${canonical}-`],
    ['empty text', ''],
    ['SQL-looking text', "'; DROP TABLE cases; --"],
  ])('rejects %s', (_name, spelling) => {
    expect(isUuidSpelling(spelling)).toBe(false);
    expect(canonicalUuid(spelling)).toBeUndefined();
  });

  it('tells canonical from non-canonical spellings', () => {
    expect(isCanonicalUuid(canonical)).toBe(true);
    expect(isCanonicalUuid(canonical.toUpperCase())).toBe(false);
    expect(isCanonicalUuid(`{${canonical}}`)).toBe(false);
  });
});

describe('uuidOrNull, the SQL classifier', () => {
  it("uses the server's own check from PostgreSQL 16, the regular expression before", async () => {
    const { PgDialect } = await import('drizzle-orm/pg-core');
    const { sql } = await import('drizzle-orm');
    const { uuidOrNull, UUID_SPELLING_SQL } = await import('../../src/core/uuid.js');
    const dialect = new PgDialect();
    const v16 = dialect.sqlToQuery(uuidOrNull(sql`t.case_id`, 160000));
    expect(v16.sql).toBe("CASE WHEN pg_input_is_valid(t.case_id, 'uuid') THEN (t.case_id)::uuid END");
    const v15 = dialect.sqlToQuery(uuidOrNull(sql`t.case_id`, 150004));
    expect(v15.sql).toBe('CASE WHEN t.case_id ~* $1 THEN (t.case_id)::uuid END');
    expect(v15.params).toEqual([UUID_SPELLING_SQL]);
  });
});
