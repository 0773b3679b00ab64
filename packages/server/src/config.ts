/**
 * The one config loader: every setting comes from the environment, is checked
 * at start, and a bad value stops the server with one line naming the variable.
 */
import { randomBytes, randomUUID } from 'node:crypto';

export type ContactsMode = 'all' | 'claims';
export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';

export interface Config {
  /** TCP port; 0 picks a free one. @default 3000 */
  port: number;
  /** @default "0.0.0.0"; "127.0.0.1" in dev mode, which mints tokens for anyone */
  host: string;
  /** HS256 secret (or several, comma separated, for rotation). */
  jwtSecret: string | null;
  /** PEM public key for RS256 / ES256 / EdDSA. */
  jwtPublicKey: string | null;
  /** A JWKS endpoint (keys cached, refetched for an unknown `kid`): rotation without restart. */
  jwksUrl: string | null;
  /** A JWKS file, re-read when it changes. */
  jwksFile: string | null;
  jwtIssuer: string | null;
  jwtAudience: string | null;
  /**
   * The longest a token may live: one whose `exp` is further than this from
   * now, or whose `iat` is older than this, is refused. Null: no limit.
   */
  jwtMaxAgeS: number | null;
  /**
   * The `typ` headers accepted (RFC 8725 §3.11), lower case, without an
   * `application/` prefix. Null: the default — none, `jwt` or `at+jwt` (so a
   * refresh or ID token of the same issuer is refused).
   */
  jwtTypes: string[] | null;
  /** True when neither key is set outside production: a random secret and `POST /dev/token`. */
  devMode: boolean;
  production: boolean;
  redisUrl: string | null;
  /** @default 30000 */
  ringTimeoutMs: number;
  /** How long a session outlives its socket. @default 30000 */
  reconnectGraceMs: number;
  /** @default 10000 */
  authTimeoutMs: number;
  /** Resumptions of one session allowed within one grace window. @default 5 */
  maxReconnectAttempts: number;
  /** @default "all" */
  contacts: ContactsMode;
  /** Allowed `Origin`s; empty = any. */
  corsOrigins: string[];
  stunUrls: string[];
  turnUrls: string[];
  turnSecret: string | null;
  /** @default 86400 */
  turnTtlS: number;
  /** @default "info" */
  logLevel: LogLevel;
  /** False when `RATE_LIMITS=off`. @default true */
  rateLimits: boolean;
  /** Redis mode: a node silent this long is dead. @default 10000 */
  nodeTimeoutMs: number;
  /** This process's node id. @default a random id */
  nodeId: string;
  /** Newest history entries kept per user. @default 200 */
  historyLimit: number;
  /**
   * Send `user:status` (busy / available) when a call starts or ends. Each is
   * one packet per watcher: with CONTACTS=all that is the whole tenant, per call.
   * @default true
   */
  presenceStatus: boolean;
  /** Key prefix in Redis. @default "sb:" */
  redisPrefix: string;
  /** Live sessions one user may hold across every node (devices, tabs). @default 10 */
  maxSessionsPerUser: number;
  /** Sockets from one address that have not authenticated yet. @default 100 */
  maxUnauthenticatedPerAddress: number;
  /** Where call events are POSTed (see `webhooks.ts`); null = no webhooks. */
  webhookUrl: string | null;
  /** HMAC-SHA256 key of the `X-Switchboard-Signature` header; required with `webhookUrl`. */
  webhookSecret: string | null;
}

export class ConfigError extends Error {
  constructor(
    readonly variable: string,
    message: string,
  ) {
    super(`${variable}: ${message}`);
    this.name = 'ConfigError';
  }
}

type Env = Record<string, string | undefined>;

function str(env: Env, name: string): string | null {
  const v = env[name];
  return v === undefined || v.trim() === '' ? null : v.trim();
}

function int(env: Env, name: string, fallback: number, min: number, max: number): number {
  const raw = str(env, name);
  if (raw === null) return fallback;
  if (!/^\d+$/.test(raw)) throw new ConfigError(name, `expected a whole number, got "${raw}"`);
  const n = Number(raw);
  if (n < min || n > max) throw new ConfigError(name, `expected ${min}…${max}, got ${n}`);
  return n;
}

function list(env: Env, name: string): string[] {
  const raw = str(env, name);
  return raw === null ? [] : raw.split(',').map((s) => s.trim()).filter(Boolean);
}

function oneOf<T extends string>(env: Env, name: string, values: readonly T[], fallback: T): T {
  const raw = str(env, name);
  if (raw === null) return fallback;
  if (!(values as readonly string[]).includes(raw)) {
    throw new ConfigError(name, `expected one of ${values.join(', ')}, got "${raw}"`);
  }
  return raw as T;
}

/** RFC 7518 §3.2: an HMAC key at least as long as the hash (HS256: 32 bytes). */
export const MIN_SECRET_BYTES = 32;

/** Each comma-separated key of `JWT_SECRET` must be long enough (a secret cannot hold a comma: it separates keys). */
function checkSecretKeys(raw: string): void {
  const keys = raw.split(',').map((k) => k.trim());
  keys.forEach((key, i) => {
    const bytes = Buffer.byteLength(key);
    if (bytes >= MIN_SECRET_BYTES) return;
    const which = keys.length === 1 ? 'the key' : `key ${i + 1} of ${keys.length} (a comma separates keys for rotation)`;
    throw new ConfigError('JWT_SECRET', `${which} is ${bytes} bytes; each key must be at least ${MIN_SECRET_BYTES} bytes (RFC 7518 §3.2)`);
  });
}

/** `JWT_TYPES`: a comma-separated list of accepted `typ` headers, normalised as `TokenVerifier` compares them. */
function jwtTypes(env: Env): string[] | null {
  const types = list(env, 'JWT_TYPES').map(normaliseTyp);
  if (types.length === 0) return null;
  const bad = types.find((t) => !/^[a-z0-9!#$&^_.+-]+$/.test(t));
  if (bad !== undefined) throw new ConfigError('JWT_TYPES', `expected media type names such as at+jwt, got "${bad}"`);
  return types;
}

/** A `typ` as compared: lower case, without the `application/` prefix RFC 7515 §4.1.9 lets it omit. */
export function normaliseTyp(typ: string): string {
  return typ.trim().toLowerCase().replace(/^application\//, '');
}

const LOG_LEVELS: readonly LogLevel[] = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

export function loadConfig(env: Env = process.env): Config {
  const production = env.NODE_ENV === 'production';
  const jwtSecret = str(env, 'JWT_SECRET');
  const jwtPublicKey = str(env, 'JWT_PUBLIC_KEY');
  const jwksUrl = str(env, 'JWT_JWKS_URL');
  const jwksFile = str(env, 'JWT_JWKS_FILE');
  const keySources = [jwtSecret && 'JWT_SECRET', jwtPublicKey && 'JWT_PUBLIC_KEY', jwksUrl && 'JWT_JWKS_URL', jwksFile && 'JWT_JWKS_FILE'].filter(
    (x): x is string => typeof x === 'string',
  );
  if (keySources.length > 1) throw new ConfigError(keySources[1]!, `set only one of ${keySources.join(', ')}`);
  if (production && keySources.length === 0) {
    throw new ConfigError('JWT_SECRET', 'production mode needs JWT_SECRET, JWT_PUBLIC_KEY, JWT_JWKS_URL or JWT_JWKS_FILE');
  }
  if (jwksUrl && !/^https?:\/\//.test(jwksUrl)) throw new ConfigError('JWT_JWKS_URL', `expected an http(s) URL, got "${jwksUrl}"`);
  if (jwtSecret) checkSecretKeys(jwtSecret);
  if (jwtPublicKey && !jwtPublicKey.includes('-----BEGIN')) {
    throw new ConfigError('JWT_PUBLIC_KEY', 'expected a PEM public key (-----BEGIN PUBLIC KEY-----)');
  }
  const redisUrl = str(env, 'REDIS_URL');
  if (redisUrl && !/^rediss?:\/\//.test(redisUrl)) {
    throw new ConfigError('REDIS_URL', `expected redis://host:port, got "${redisUrl}"`);
  }
  const turnUrls = list(env, 'TURN_URLS');
  const turnSecret = str(env, 'TURN_SECRET');
  for (const url of turnUrls) {
    if (!/^turns?:/.test(url)) throw new ConfigError('TURN_URLS', `expected turn: or turns: URLs, got "${url}"`);
  }
  if (turnUrls.length > 0 && !turnSecret) throw new ConfigError('TURN_SECRET', 'TURN_URLS is set but TURN_SECRET is not');
  for (const url of list(env, 'STUN_URLS')) {
    if (!/^stuns?:/.test(url)) throw new ConfigError('STUN_URLS', `expected stun: or stuns: URLs, got "${url}"`);
  }
  const webhookUrl = str(env, 'WEBHOOK_URL');
  const webhookSecret = str(env, 'WEBHOOK_SECRET');
  if (webhookUrl && (!/^https?:\/\//.test(webhookUrl) || !URL.canParse(webhookUrl))) {
    throw new ConfigError('WEBHOOK_URL', `expected an http(s) URL, got "${maskUrl(webhookUrl)}"`);
  }
  if (webhookUrl && !webhookSecret) throw new ConfigError('WEBHOOK_SECRET', 'WEBHOOK_URL is set but WEBHOOK_SECRET is not');
  const rateLimits = oneOf(env, 'RATE_LIMITS', ['on', 'off', 'default'], 'default') !== 'off';
  const nodeId = str(env, 'NODE_ID') ?? `node-${randomUUID().slice(0, 8)}`;
  const devMode = !production && keySources.length === 0;
  return {
    port: int(env, 'PORT', 3000, 0, 65535),
    host: str(env, 'HOST') ?? (devMode ? '127.0.0.1' : '0.0.0.0'),
    jwtSecret: devMode ? randomBytes(32).toString('base64url') : jwtSecret,
    jwtPublicKey,
    jwksUrl,
    jwksFile,
    jwtIssuer: str(env, 'JWT_ISSUER'),
    jwtAudience: str(env, 'JWT_AUDIENCE'),
    jwtMaxAgeS: str(env, 'JWT_MAX_AGE_S') === null ? null : int(env, 'JWT_MAX_AGE_S', 0, 60, 366 * 86_400),
    jwtTypes: jwtTypes(env),
    devMode,
    production,
    redisUrl,
    ringTimeoutMs: int(env, 'RING_TIMEOUT_MS', 30_000, 100, 600_000),
    reconnectGraceMs: int(env, 'RECONNECT_GRACE_MS', 30_000, 100, 3_600_000),
    authTimeoutMs: int(env, 'AUTH_TIMEOUT_MS', 10_000, 100, 600_000),
    maxReconnectAttempts: int(env, 'MAX_RECONNECT_ATTEMPTS', 5, 0, 1000),
    contacts: oneOf(env, 'CONTACTS', ['all', 'claims'], 'all'),
    corsOrigins: list(env, 'CORS_ORIGINS'),
    stunUrls: list(env, 'STUN_URLS'),
    turnUrls,
    turnSecret,
    turnTtlS: int(env, 'TURN_TTL_S', 86_400, 60, 30 * 86_400),
    logLevel: oneOf(env, 'LOG_LEVEL', LOG_LEVELS, 'info'),
    rateLimits,
    nodeTimeoutMs: int(env, 'NODE_TIMEOUT_MS', 10_000, 500, 600_000),
    nodeId,
    historyLimit: int(env, 'HISTORY_LIMIT', 200, 1, 10_000),
    presenceStatus: oneOf(env, 'PRESENCE_STATUS', ['on', 'off'], 'on') === 'on',
    redisPrefix: str(env, 'REDIS_PREFIX') ?? 'sb:',
    maxSessionsPerUser: int(env, 'MAX_SESSIONS_PER_USER', 10, 1, 10_000),
    maxUnauthenticatedPerAddress: int(env, 'MAX_UNAUTHENTICATED_PER_ADDRESS', 100, 1, 1_000_000),
    webhookUrl,
    webhookSecret,
  };
}

/** What an operator sets: every variable `loadConfig` reads, in the order `switchboard check` prints them. */
export interface ConfigVariable {
  name: string;
  /** One line for `--help`. */
  help: string;
  /** Never printed or logged. */
  secret?: boolean;
}

export const CONFIG_VARIABLES: readonly ConfigVariable[] = [
  { name: 'PORT', help: 'TCP port; 0 = any free port (default 3000)' },
  { name: 'HOST', help: 'address to listen on (default 0.0.0.0; 127.0.0.1 in dev mode)' },
  { name: 'NODE_ENV', help: '"production": JSON logs only, a JWT key is required' },
  { name: 'JWT_SECRET', help: 'HS256/384/512 secret; several comma-separated for rotation', secret: true },
  { name: 'JWT_PUBLIC_KEY', help: 'PEM public key (RS*, PS*, ES*, EdDSA)' },
  { name: 'JWT_JWKS_URL', help: 'JWKS endpoint (keys cached, refetched for an unknown kid)' },
  { name: 'JWT_JWKS_FILE', help: 'JWKS file, re-read when it changes' },
  { name: 'JWT_ISSUER', help: 'required iss claim' },
  { name: 'JWT_AUDIENCE', help: 'required aud claim' },
  { name: 'JWT_MAX_AGE_S', help: 'refuse tokens that live longer than this (exp from now, or iat ago); unset = no limit' },
  { name: 'JWT_TYPES', help: 'accepted typ headers, comma-separated (default: none, JWT or at+jwt)' },
  { name: 'REDIS_URL', help: 'unset: one process, state in memory; set: state and events shared in Redis' },
  { name: 'REDIS_PREFIX', help: 'key and channel prefix in Redis (default sb:)' },
  { name: 'NODE_ID', help: "this process's node id in logs and Redis (default random)" },
  { name: 'RING_TIMEOUT_MS', help: 'an unanswered call ends after this (default 30000)' },
  { name: 'RECONNECT_GRACE_MS', help: 'a session outlives its socket this long (default 30000)' },
  { name: 'AUTH_TIMEOUT_MS', help: 'a socket must sign in within this (default 10000)' },
  { name: 'MAX_RECONNECT_ATTEMPTS', help: 'resumptions of one session within one grace window (default 5)' },
  { name: 'NODE_TIMEOUT_MS', help: 'Redis mode: a node silent this long is dead (default 10000)' },
  { name: 'CONTACTS', help: '"all" (everyone in the tenant) or "claims" (the token\'s contacts)' },
  { name: 'CORS_ORIGINS', help: 'comma-separated allowed Origins; unset = any' },
  { name: 'STUN_URLS', help: 'comma-separated stun: URLs handed to clients' },
  { name: 'TURN_URLS', help: 'comma-separated turn:/turns: URLs (with TURN_SECRET)' },
  { name: 'TURN_SECRET', help: "coturn's static-auth-secret", secret: true },
  { name: 'TURN_TTL_S', help: 'lifetime of TURN credentials (default 86400)' },
  { name: 'WEBHOOK_URL', help: 'http(s) URL that receives call events as signed JSON POSTs' },
  { name: 'WEBHOOK_SECRET', help: 'HMAC-SHA256 key of X-Switchboard-Signature', secret: true },
  { name: 'LOG_LEVEL', help: 'fatal, error, warn, info (default), debug, trace or silent' },
  { name: 'RATE_LIMITS', help: '"off" disables every rate limit and cap (benchmarks)' },
  { name: 'HISTORY_LIMIT', help: 'newest history records kept per user (default 200)' },
  { name: 'PRESENCE_STATUS', help: '"on" (default): user:status busy/available to whoever may see a user; "off" for very large tenants' },
  { name: 'MAX_SESSIONS_PER_USER', help: 'live sessions one user may hold (default 10)' },
  { name: 'MAX_UNAUTHENTICATED_PER_ADDRESS', help: 'sockets from one address not signed in yet (default 100)' },
];

const MASK = '****';

/** A URL with any password (and the query string, which may carry a key) masked, safe to print or log. */
export function maskUrl(raw: string): string {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return raw.replace(/\/\/[^@/]*@/, `//${MASK}@`);
  }
  if (url.password) url.password = MASK;
  if (url.search) url.search = `?${MASK}`;
  return url.toString();
}

/**
 * The effective configuration as `VARIABLE → value` for display: secrets
 * masked, passwords inside URLs masked, lists joined.
 */
export function describeConfig(config: Config): [name: string, value: string][] {
  const set = (v: string | null) => (v === null ? '' : v);
  const secret = (v: string | null) => (v === null ? '' : `${MASK} (${v.split(',').length === 1 ? 'set' : `${v.split(',').length} keys`})`);
  const values: Record<string, string> = {
    PORT: String(config.port),
    HOST: config.host,
    NODE_ENV: config.production ? 'production' : '',
    JWT_SECRET: config.devMode ? `${MASK} (dev mode: random, per process)` : secret(config.jwtSecret),
    JWT_PUBLIC_KEY: config.jwtPublicKey ? `PEM, ${config.jwtPublicKey.length} characters` : '',
    JWT_JWKS_URL: config.jwksUrl ? maskUrl(config.jwksUrl) : '',
    JWT_JWKS_FILE: set(config.jwksFile),
    JWT_ISSUER: set(config.jwtIssuer),
    JWT_AUDIENCE: set(config.jwtAudience),
    JWT_MAX_AGE_S: config.jwtMaxAgeS === null ? '' : String(config.jwtMaxAgeS),
    JWT_TYPES: config.jwtTypes === null ? '' : config.jwtTypes.join(','),
    REDIS_URL: config.redisUrl ? maskUrl(config.redisUrl) : '',
    REDIS_PREFIX: config.redisPrefix,
    NODE_ID: config.nodeId,
    RING_TIMEOUT_MS: String(config.ringTimeoutMs),
    RECONNECT_GRACE_MS: String(config.reconnectGraceMs),
    AUTH_TIMEOUT_MS: String(config.authTimeoutMs),
    MAX_RECONNECT_ATTEMPTS: String(config.maxReconnectAttempts),
    NODE_TIMEOUT_MS: String(config.nodeTimeoutMs),
    CONTACTS: config.contacts,
    CORS_ORIGINS: config.corsOrigins.join(','),
    STUN_URLS: config.stunUrls.join(','),
    TURN_URLS: config.turnUrls.join(','),
    TURN_SECRET: secret(config.turnSecret),
    TURN_TTL_S: String(config.turnTtlS),
    WEBHOOK_URL: config.webhookUrl ? maskUrl(config.webhookUrl) : '',
    WEBHOOK_SECRET: secret(config.webhookSecret),
    LOG_LEVEL: config.logLevel,
    RATE_LIMITS: config.rateLimits ? 'on' : 'off',
    HISTORY_LIMIT: String(config.historyLimit),
    MAX_SESSIONS_PER_USER: String(config.maxSessionsPerUser),
    MAX_UNAUTHENTICATED_PER_ADDRESS: String(config.maxUnauthenticatedPerAddress),
  };
  return CONFIG_VARIABLES.map((v) => [v.name, values[v.name] ?? '']);
}

/** What an operator should hear about a valid configuration: `switchboard check` prints these, and the server logs them at start. */
export function configWarnings(config: Config): string[] {
  const warnings: string[] = [];
  if (config.devMode) warnings.push('dev mode: a random JWT secret per process, and POST /dev/token hands a token to anyone');
  if (config.production && config.corsOrigins.length === 0) {
    warnings.push('CORS_ORIGINS is not set: browsers on any site may open sockets here (cross-site WebSocket hijacking). Set it to your app origins.');
  }
  if (config.production && config.jwtAudience === null) {
    warnings.push('JWT_AUDIENCE is not set: a token your issuer made for another service is accepted here (RFC 8725 §3.9)');
  }
  if (config.production && config.jwtMaxAgeS === null) {
    warnings.push('JWT_MAX_AGE_S is not set: a token is accepted for as long as its exp says, however far off');
  }
  return warnings;
}
