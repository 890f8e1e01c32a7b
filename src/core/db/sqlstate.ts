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

/** The SQLSTATE of a driver error, when it has one. */
export function sqlStateOf(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) ? code : undefined;
}

/** Formats a PostgreSQL error with its code, detail and hint, once. */
export function describePgError(error: unknown): string {
  const e = error as { message?: string; code?: string; detail?: string; hint?: string };
  const parts = [e.message ?? String(error)];
  if (sqlStateOf(error)) parts.push(`(SQLSTATE ${e.code})`);
  if (e.detail) parts.push(`detail: ${e.detail}`);
  if (e.hint) parts.push(`hint: ${e.hint}`);
  return parts.join(' ');
}
