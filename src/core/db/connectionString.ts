/**
 * Connection strings as libpq reads them, turned into one set of libpq keywords and then into
 * the pg driver's settings:
 * - postgres:// and postgresql:// URLs (query parameters are keywords), libpq key/value strings
 *   (`host=db dbname=app user=ops`), and `service=NAME`;
 * - the service file (PGSERVICEFILE or ~/.pg_service.conf, then PGSYSCONFDIR/pg_service.conf),
 *   the PG* variables, and .pgpass (passfile, PGPASSFILE or ~/.pgpass), in libpq's precedence:
 *   the string, then its service, then the environment;
 * - sslmode with libpq's meaning (require does not verify; verify-ca and verify-full do), and
 *   sslrootcert, sslcert and sslkey.
 * Anything else is a usage error before any network call. Passwords never leave this module in
 * a printable form: describeParams names the target without one.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { ConnectionOptions } from 'node:tls';
import type pg from 'pg';
import pgpassHelper from 'pgpass/lib/helper.js';
import { UsageError } from '../errors.js';

/** libpq keywords and their values. */
export type ConnParams = Partial<Record<Keyword, string>>;

const KEYWORDS = [
  'host',
  'hostaddr',
  'port',
  'dbname',
  'user',
  'password',
  'passfile',
  'connect_timeout',
  'application_name',
  'fallback_application_name',
  'sslmode',
  'sslrootcert',
  'sslcert',
  'sslkey',
  'service',
  'options',
  'client_encoding',
  'keepalives',
  'keepalives_idle',
  'keepalives_interval',
  'keepalives_count',
  'tcp_user_timeout',
  'target_session_attrs',
  'load_balance_hosts',
] as const;
type Keyword = (typeof KEYWORDS)[number];

const ENV: Partial<Record<Keyword, string>> = {
  host: 'PGHOST',
  hostaddr: 'PGHOSTADDR',
  port: 'PGPORT',
  dbname: 'PGDATABASE',
  user: 'PGUSER',
  password: 'PGPASSWORD',
  passfile: 'PGPASSFILE',
  connect_timeout: 'PGCONNECT_TIMEOUT',
  application_name: 'PGAPPNAME',
  sslmode: 'PGSSLMODE',
  sslrootcert: 'PGSSLROOTCERT',
  sslcert: 'PGSSLCERT',
  sslkey: 'PGSSLKEY',
  options: 'PGOPTIONS',
  client_encoding: 'PGCLIENTENCODING',
  target_session_attrs: 'PGTARGETSESSIONATTRS',
  load_balance_hosts: 'PGLOADBALANCEHOSTS',
};

/** What a host must be to be chosen, as libpq's target_session_attrs says. */
export const SESSION_ATTRS = ['any', 'read-write', 'read-only', 'primary', 'standby', 'prefer-standby'] as const;
export type SessionAttrs = (typeof SESSION_ATTRS)[number];

const SSLMODES = ['disable', 'allow', 'prefer', 'require', 'verify-ca', 'verify-full'];

function isKeyword(key: string): key is Keyword {
  return (KEYWORDS as readonly string[]).includes(key);
}

function setKeyword(params: ConnParams, key: string, value: string, where: string): void {
  // libpq accepts ssl=true in URLs (JDBC's spelling) as sslmode=require.
  if (key === 'ssl' && value === 'true') {
    key = 'sslmode';
    value = 'require';
  }
  if (!isKeyword(key)) throw new UsageError(`unknown connection parameter "${key}" in ${where}`);
  params[key] = value;
}

/** A connection string: a URL or key/value pairs. Throws UsageError for anything else. */
export function parseConnectionString(text: string, where = 'the connection string'): ConnParams {
  const trimmed = text.trim();
  if (/^postgres(?:ql)?:\/\//i.test(trimmed)) return parseUrl(trimmed, where);
  if (/^[A-Za-z_]+\s*=/.test(trimmed)) return parseKeyValue(trimmed, where);
  throw new UsageError(`${where} is neither a postgres:// URL nor libpq key=value pairs (e.g. "host=db dbname=app user=ops")`);
}

/**
 * A URL, with libpq's host list: postgres://user@a:5432,b:5433/db. The WHATWG URL parser takes
 * one host, so the authority's host list is split here and the rest parsed as a one-host URL.
 */
function parseUrl(text: string, where: string): ConnParams {
  const m = /^(postgres(?:ql)?:\/\/)([^/?#]*)(.*)$/i.exec(text)!;
  const authority = m[2]!;
  const at = authority.lastIndexOf('@');
  const userinfo = at >= 0 ? authority.slice(0, at + 1) : '';
  const hostList = at >= 0 ? authority.slice(at + 1) : authority;
  let url: URL;
  try {
    url = new URL(`${m[1]}${userinfo}placeholder${m[3]}`);
  } catch {
    throw new UsageError(`${where} is not a valid URL`);
  }
  const params: ConnParams = {};
  const hosts: string[] = [];
  const ports: string[] = [];
  for (const entry of hostList === '' ? [] : hostList.split(',')) {
    const hp = /^(\[[^\]]*\]|[^:]*)(?::(.*))?$/.exec(entry)!;
    hosts.push(decodeURIComponent(hp[1]!).replace(/^\[(.*)\]$/, '$1'));
    ports.push(hp[2] ?? '');
  }
  if (hosts.some((h) => h !== '')) params.host = hosts.join(',');
  if (ports.some((p) => p !== '')) params.port = ports.join(',');
  const dbname = decodeURIComponent(url.pathname.replace(/^\//, ''));
  if (dbname) params.dbname = dbname;
  if (url.username) params.user = decodeURIComponent(url.username);
  if (url.password) params.password = decodeURIComponent(url.password);
  for (const [key, value] of url.searchParams) setKeyword(params, key, value, where);
  return params;
}

/** libpq's key/value grammar: key = value, the value bare or in single quotes with \' and \\. */
function parseKeyValue(text: string, where: string): ConnParams {
  const params: ConnParams = {};
  let i = 0;
  const skipSpace = () => {
    while (i < text.length && /\s/.test(text[i]!)) i++;
  };
  while (true) {
    skipSpace();
    if (i >= text.length) return params;
    const keyMatch = /^[A-Za-z_]+/.exec(text.slice(i));
    if (!keyMatch) throw new UsageError(`${where}: expected key=value at "${text.slice(i, i + 12).replace(/password.*/i, 'password…')}"`);
    const key = keyMatch[0];
    i += key.length;
    skipSpace();
    if (text[i] !== '=') throw new UsageError(`${where}: missing "=" after "${key}"`);
    i++;
    skipSpace();
    let value = '';
    if (text[i] === "'") {
      i++;
      while (i < text.length && text[i] !== "'") {
        if (text[i] === '\\' && i + 1 < text.length) i++;
        value += text[i++];
      }
      if (text[i] !== "'") throw new UsageError(`${where}: unterminated quoted value for "${key}"`);
      i++;
    } else {
      while (i < text.length && !/\s/.test(text[i]!)) {
        if (text[i] === '\\' && i + 1 < text.length) i++;
        value += text[i++];
      }
    }
    setKeyword(params, key, value, where);
  }
}

/** The sections of a pg_service.conf file. */
function readServiceFile(file: string): Map<string, ConnParams> | undefined {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
  const services = new Map<string, ConnParams>();
  let current: ConnParams | undefined;
  for (const [n, raw] of text.split(/\r?\n/).entries()) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const section = /^\[(.+)\]$/.exec(line);
    if (section) {
      current = {};
      services.set(section[1]!.trim(), current);
      continue;
    }
    const eq = line.indexOf('=');
    if (eq < 0 || !current) throw new UsageError(`${file} line ${n + 1}: expected [service] or key=value`);
    setKeyword(current, line.slice(0, eq).trim(), line.slice(eq + 1).trim(), `${file} line ${n + 1}`);
  }
  return services;
}

function serviceParams(name: string, env: NodeJS.ProcessEnv): ConnParams {
  const files = [
    env.PGSERVICEFILE ?? path.join(env.HOME ?? os.homedir(), '.pg_service.conf'),
    path.join(env.PGSYSCONFDIR ?? '/etc/postgresql-common', 'pg_service.conf'),
  ];
  for (const file of files) {
    const found = readServiceFile(file)?.get(name);
    if (found) {
      if (found.service) throw new UsageError(`service "${name}" in ${file} names another service; nested services are not supported`);
      return found;
    }
  }
  throw new UsageError(`service "${name}" is not defined in ${files.join(' or ')}`);
}

/**
 * The full set of keywords for a connection: the string's own, then its service's (service= or
 * PGSERVICE), then the PG* variables. `text` undefined means "from the environment only".
 */
export function resolveParams(text: string | undefined, env: NodeJS.ProcessEnv, where?: string): ConnParams {
  const explicit = text === undefined ? {} : parseConnectionString(text, where);
  const serviceName = explicit.service ?? env.PGSERVICE;
  const fromService = serviceName ? serviceParams(serviceName, env) : {};
  const fromEnv: ConnParams = {};
  for (const [key, variable] of Object.entries(ENV) as Array<[Keyword, string]>) {
    const value = env[variable];
    if (value !== undefined && value !== '') fromEnv[key] = value;
  }
  const params: ConnParams = { ...fromEnv, ...fromService, ...explicit };
  delete params.service;
  if (params.sslmode && !SSLMODES.includes(params.sslmode)) {
    throw new UsageError(`sslmode "${params.sslmode}" is not one of ${SSLMODES.join(', ')}`);
  }
  if (params.target_session_attrs && !(SESSION_ATTRS as readonly string[]).includes(params.target_session_attrs)) {
    throw new UsageError(`target_session_attrs "${params.target_session_attrs}" is not one of ${SESSION_ATTRS.join(', ')}`);
  }
  if (params.load_balance_hosts && !['disable', 'random'].includes(params.load_balance_hosts)) {
    throw new UsageError(`load_balance_hosts "${params.load_balance_hosts}" is not one of disable, random`);
  }
  for (const port of (params.port ?? '').split(',')) {
    if (port !== '' && !/^\d{1,5}$/.test(port)) throw new UsageError(`port "${port}" is not a port number`);
  }
  for (const key of [
    'connect_timeout',
    'keepalives',
    'keepalives_idle',
    'keepalives_interval',
    'keepalives_count',
    'tcp_user_timeout',
  ] as const) {
    if (params[key] !== undefined && !/^\d+$/.test(params[key]!)) throw new UsageError(`${key} "${params[key]}" is not a whole number`);
  }
  hostsOf(params); // the host and port lists must match
  return params;
}

/** One host of a connection string's list, with its port. */
export interface HostEntry {
  host: string;
  port: number;
}

/**
 * The hosts to try, in order, as libpq pairs them: host and hostaddr lists, and a port list of
 * one entry (for every host) or one per host; an empty entry means the default.
 */
export function hostsOf(params: ConnParams): HostEntry[] {
  const hosts = (params.host ?? params.hostaddr ?? 'localhost').split(',').map((h) => (h === '' ? 'localhost' : h));
  const ports = (params.port ?? '').split(',');
  if (ports.length !== 1 && ports.length !== hosts.length) {
    throw new UsageError(`the connection string names ${hosts.length} host(s) but ${ports.length} ports: give one port, or one per host`);
  }
  return hosts.map((host, i) => ({ host, port: Number((ports.length === 1 ? ports[0] : ports[i]) || 5432) }));
}

/** "postgres://user@host:port/db" (or "host1:5432,host2:5433"): the target without its password. */
export function describeParams(params: ConnParams, env: NodeJS.ProcessEnv = process.env, only?: HostEntry): string {
  const user = params.user ?? env.USER ?? '';
  const db = params.dbname ?? user;
  const hostPart = (h: string) => (h.startsWith('/') || h.includes(':') ? `[${h}]` : h);
  const hosts = only ? [only] : safeHosts(params);
  return `postgres://${user ? `${user}@` : ''}${hosts.map((h) => `${hostPart(h.host)}:${h.port}`).join(',')}/${db}`;
}

function safeHosts(params: ConnParams): HostEntry[] {
  try {
    return hostsOf(params);
  } catch {
    return [{ host: params.host ?? 'localhost', port: 5432 }];
  }
}

/** What TLS to ask for, by sslmode; prefer/allow fall back to plain text (see openDatabase). */
function tlsOptions(params: ConnParams): ConnectionOptions | false {
  const mode = params.sslmode ?? 'prefer';
  if (mode === 'disable' || (params.host ?? '').startsWith('/')) return false;
  const read = (file: string, what: string) => {
    try {
      return fs.readFileSync(file, 'utf8');
    } catch (error) {
      throw new UsageError(`cannot read ${what} ${file}: ${(error as NodeJS.ErrnoException).code ?? 'error'}`);
    }
  };
  const ssl: ConnectionOptions = {};
  if (params.sslcert) ssl.cert = read(params.sslcert, 'sslcert');
  if (params.sslkey) ssl.key = read(params.sslkey, 'sslkey');
  if (params.sslrootcert && params.sslrootcert !== 'system') ssl.ca = read(params.sslrootcert, 'sslrootcert');
  const verifyCa = mode === 'verify-ca' || (mode === 'require' && params.sslrootcert !== undefined);
  if (mode === 'verify-full') return ssl;
  if (verifyCa) {
    if (!ssl.ca && params.sslrootcert !== 'system')
      throw new UsageError('sslmode=verify-ca needs sslrootcert (the CA that signed the server certificate)');
    return { ...ssl, checkServerIdentity: () => undefined };
  }
  return { ...ssl, rejectUnauthorized: false };
}

/** Whether the connection may fall back to plain text when the server has no TLS. */
export function tlsIsOptional(params: ConnParams): boolean {
  return ['prefer', 'allow', undefined].includes(params.sslmode);
}

/** Keepalives' idle time when the string gives none: a silent peer is probed soon. */
export const DEFAULT_KEEPALIVES_IDLE_S = 10;

/**
 * The pg driver's settings for these keywords, for one host of the list (the first by default;
 * .pgpass read when no password is given). Keepalives are on unless keepalives=0; Node.js sets
 * their idle time only (keepalives_interval and keepalives_count are the system's): a network
 * that goes silent under a statement is bounded by the client-side deadlines instead.
 */
export function toClientConfig(params: ConnParams, env: NodeJS.ProcessEnv = process.env, entry?: HostEntry): pg.ClientConfig {
  const { host, port } = entry ?? hostsOf(params)[0]!;
  const user = params.user ?? env.USER ?? os.userInfo().username;
  const database = params.dbname ?? user;
  const config: pg.ClientConfig = {
    host,
    port,
    user,
    database,
    ssl: tlsOptions(params),
    password: params.password ?? (() => passwordFromFile(params, { host, port, user, database }, env)),
  };
  if (params.connect_timeout) config.connectionTimeoutMillis = Number(params.connect_timeout) * 1000;
  if (params.options) config.options = params.options;
  config.keepAlive = params.keepalives !== '0';
  config.keepAliveInitialDelayMillis = Number(params.keepalives_idle ?? DEFAULT_KEEPALIVES_IDLE_S) * 1000;
  return config;
}

/** The matching line of the password file, as libpq reads it (ignored unless mode 0600). */
async function passwordFromFile(
  params: ConnParams,
  info: { host: string; port: number; user: string; database: string },
  env: NodeJS.ProcessEnv,
): Promise<string> {
  const file = params.passfile ?? pgpassHelper.getFileName(env);
  let stat: fs.Stats;
  try {
    stat = await fs.promises.stat(file);
  } catch {
    return '';
  }
  if (!pgpassHelper.usePgPass(stat, file)) return '';
  const hostForFile = info.host.startsWith('/') ? 'localhost' : info.host;
  return new Promise((resolve) => {
    pgpassHelper.getPassword({ ...info, host: hostForFile, port: String(info.port) }, fs.createReadStream(file), (pass) =>
      resolve(pass ?? ''),
    );
  });
}
