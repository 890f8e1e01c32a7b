/**
 * Several hosts, as libpq reads them (node-postgres has no multi-host support): the hosts of a
 * connection string are tried in order (or shuffled, load_balance_hosts=random), each within
 * its connect_timeout, and the session attribute is checked after connect (pg_is_in_recovery(),
 * transaction_read_only), as libpq does. The first host that has it is the command's server:
 * every connection of the command's pool goes there, so a command never runs half on one node
 * and half on another, and a failover is seen as a lost connection, never followed.
 */
import type pg from 'pg';
import pgModule from 'pg';
import { ConnectionError, toError } from '../errors.js';
import { hostsOf, tlsIsOptional, toClientConfig, type ConnParams, type HostEntry, type SessionAttrs } from './connectionString.js';
import { safeMessage } from './sqlstate.js';

/** What a connection found the server to be. */
export interface ServerFacts {
  serverVersionNum: number;
  standby: boolean;
  /** transaction_read_only: on for a standby and where default_transaction_read_only is on. */
  readOnly: boolean;
}

export interface Reached {
  /** The driver settings of the host reached (TLS as it was negotiated). */
  config: pg.ClientConfig;
  entry: HostEntry;
  facts: ServerFacts;
  /** 1-based place of the host in the list, and the list's length. */
  index: number;
  count: number;
}

function matches(attrs: SessionAttrs, facts: ServerFacts, pass: 'first' | 'second'): boolean {
  switch (attrs) {
    case 'read-write':
      return !facts.readOnly;
    case 'read-only':
      return facts.readOnly;
    case 'primary':
      return !facts.standby;
    case 'standby':
      return facts.standby;
    case 'prefer-standby':
      return pass === 'second' || facts.standby;
    default:
      return true;
  }
}

/** What the host is, read on one short-lived connection; the client is closed whatever happens. */
export async function probe(config: pg.ClientConfig, applicationName: string): Promise<ServerFacts> {
  const client = new pgModule.Client({ ...config, application_name: applicationName });
  client.on('error', () => undefined);
  try {
    await client.connect();
    const r = await client.query<{ v: string; standby: boolean; ro: string }>(
      "SELECT current_setting('server_version_num') AS v, pg_is_in_recovery() AS standby, current_setting('transaction_read_only') AS ro",
    );
    const row = r.rows[0]!;
    return { serverVersionNum: Number(row.v), standby: row.standby, readOnly: row.ro === 'on' };
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** sslmode prefer (libpq's default) and allow: a server without TLS is reached in plain text. */
async function probeHost(params: ConnParams, env: NodeJS.ProcessEnv, entry: HostEntry, applicationName: string, connectTimeoutMs: number) {
  const config: pg.ClientConfig = { ...toClientConfig(params, env, entry) };
  config.connectionTimeoutMillis ??= connectTimeoutMs;
  try {
    return { config, facts: await probe(config, applicationName) };
  } catch (error) {
    if (!(tlsIsOptional(params) && config.ssl && /does not support SSL/i.test(toError(error).message))) throw error;
    const plain = { ...config, ssl: false };
    return { config: plain, facts: await probe(plain, applicationName) };
  }
}

/** A host's facts for messages: "a hot standby", "read-only". */
const what = (f: ServerFacts) => (f.standby ? 'a hot standby' : f.readOnly ? 'read-only' : 'read-write');

/**
 * The host this command uses: the first (of the order, or a shuffle) that answers and has the
 * wanted attribute. With one host and any attribute, its connection error is thrown as it is
 * (the caller words it); otherwise a ConnectionError (exit 3) names every host and why it was not taken.
 */
export async function reachHost(
  params: ConnParams,
  env: NodeJS.ProcessEnv,
  options: { attrs: SessionAttrs; applicationName: string; connectTimeoutMs: number },
): Promise<Reached> {
  const hosts = hostsOf(params);
  const order = params.load_balance_hosts === 'random' ? shuffle(hosts) : hosts;
  const reasons = new Map<HostEntry, string>();
  let lastError: unknown;
  for (const pass of options.attrs === 'prefer-standby' ? (['first', 'second'] as const) : (['first'] as const)) {
    for (const entry of order) {
      if (reasons.has(entry) && !(pass === 'second' && !reasons.get(entry)!.startsWith('cannot connect'))) continue;
      try {
        const { config, facts } = await probeHost(params, env, entry, options.applicationName, options.connectTimeoutMs);
        if (matches(options.attrs, facts, pass)) return { config, entry, facts, index: hosts.indexOf(entry) + 1, count: hosts.length };
        reasons.set(entry, `${what(facts)}, not ${options.attrs}`);
      } catch (error) {
        lastError = error;
        reasons.set(entry, `cannot connect: ${safeMessage(error)}`);
      }
    }
  }
  if (hosts.length === 1 && options.attrs === 'any' && lastError) throw lastError;
  const list = hosts.map((h) => `${h.host}:${h.port} (${reasons.get(h) ?? 'not tried'})`).join('; ');
  throw new ConnectionError(`no host is ${options.attrs === 'any' ? 'reachable' : options.attrs}: ${list}; nothing was changed`, {
    cause: lastError,
  });
}

function shuffle<T>(items: T[]): T[] {
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}
