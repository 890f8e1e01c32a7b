/** SQLSTATE codes caseguard reacts to, by name (PostgreSQL Appendix A). */
export const SqlState = {
  uniqueViolation: '23505',
  foreignKeyViolation: '23503',
  checkViolation: '23514',
  invalidTextRepresentation: '22P02',
  lockNotAvailable: '55P03',
  queryCanceled: '57014',
  adminShutdown: '57P01',
  cannotConnectNow: '57P03',
  serializationFailure: '40001',
  deadlockDetected: '40P01',
  invalidPassword: '28P01',
  invalidAuthorization: '28000',
  invalidCatalogName: '3D000',
  insufficientPrivilege: '42501',
  undefinedTable: '42P01',
  undefinedColumn: '42703',
  duplicateObject: '42710',
  readOnlySqlTransaction: '25006',
} as const;

/**
 * The PostgreSQL error inside a thrown value: drizzle wraps driver errors (the query in its
 * message, the driver's error as its cause), so the cause chain is followed.
 */
export function pgErrorOf(error: unknown): (Error & { code: string; detail?: string; hint?: string }) | undefined {
  for (let e = error, depth = 0; e && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code)) return e as Error & { code: string };
  }
  return undefined;
}

/** The SQLSTATE of a driver error, when it has one. */
export function sqlStateOf(error: unknown): string | undefined {
  return pgErrorOf(error)?.code;
}

/** Formats a PostgreSQL error with its code, detail and hint, once. */
export function describePgError(error: unknown): string {
  const e = (pgErrorOf(error) ?? error) as { message?: string; code?: string; detail?: string; hint?: string };
  const parts = [e.message ?? String(error)];
  if (sqlStateOf(error)) parts.push(`(SQLSTATE ${e.code})`);
  if (e.detail) parts.push(`detail: ${e.detail}`);
  if (e.hint) parts.push(`hint: ${e.hint}`);
  return parts.join(' ');
}
