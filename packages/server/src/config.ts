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
  /** @default "0.0.0.0" */
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
  /** Key prefix in Redis. @default "sb:" */
  redisPrefix: string;
  /** Live sessions one user may hold on one node (devices, tabs). @default 10 */
  maxSessionsPerUser: number;
  /** Sockets from one address that have not authenticated yet. @default 100 */
  maxUnauthenticatedPerAddress: number;
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
  const rateLimits = oneOf(env, 'RATE_LIMITS', ['on', 'off', 'default'], 'default') !== 'off';
  const nodeId = str(env, 'NODE_ID') ?? `node-${randomUUID().slice(0, 8)}`;
  const devMode = !production && keySources.length === 0;
  return {
    port: int(env, 'PORT', 3000, 0, 65535),
    host: str(env, 'HOST') ?? '0.0.0.0',
    jwtSecret: devMode ? randomBytes(32).toString('base64url') : jwtSecret,
    jwtPublicKey,
    jwksUrl,
    jwksFile,
    jwtIssuer: str(env, 'JWT_ISSUER'),
    jwtAudience: str(env, 'JWT_AUDIENCE'),
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
    redisPrefix: str(env, 'REDIS_PREFIX') ?? 'sb:',
    maxSessionsPerUser: int(env, 'MAX_SESSIONS_PER_USER', 10, 1, 10_000),
    maxUnauthenticatedPerAddress: int(env, 'MAX_UNAUTHENTICATED_PER_ADDRESS', 100, 1, 1_000_000),
  };
}
