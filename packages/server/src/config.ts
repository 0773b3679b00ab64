/**
 * The one table of configuration variables, and the one loader: every
 * setting comes from the environment, is checked at start, and a bad value
 * stops the server with one line naming the variable. The `Config` type, the
 * CLI flags, `switchboard check` and the README table are all made from
 * `VARIABLES` (see config-table.ts for the kinds of row).
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { DEFAULT_PREFIX } from './store/redis-keys.js';
import { DEFAULT_HISTORY_LIMIT } from './store/types.js';
import { trustedProxyError } from './transport/client-address.js';
import {
  ConfigError,
  type Env,
  intVar,
  items,
  listVar,
  maskUrl,
  MASK,
  type ModeContext,
  oneOfVar,
  optionalIntVar,
  plainHelp,
  showSecret,
  switchVar,
  text,
  textVar,
  textWithDefault,
  type Variable,
} from './config-table.js';

export { ConfigError, maskUrl };

export type ContactsMode = 'all' | 'claims';
export type RingOfflineMode = 'off' | 'webhook';
export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
const LOG_LEVELS: readonly LogLevel[] = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

/** RFC 7518 §3.2: an HMAC key at least as long as the hash (HS256: 32 bytes). */
export const MIN_SECRET_BYTES = 32;

/** A `typ` as compared: lower case, without the `application/` prefix RFC 7515 §4.1.9 lets it omit. */
export function normaliseTyp(typ: string): string {
  return typ.trim().toLowerCase().replace(/^application\//, '');
}

/** Each comma-separated key of `JWT_SECRET` must be long enough (a secret cannot hold a comma: it separates keys). */
function secretKeyProblem(raw: string): string | null {
  const keys = raw.split(',').map((k) => k.trim());
  for (const [i, key] of keys.entries()) {
    const bytes = Buffer.byteLength(key);
    if (bytes >= MIN_SECRET_BYTES) continue;
    const which = keys.length === 1 ? 'the key' : `key ${i + 1} of ${keys.length} (a comma separates keys for rotation)`;
    return `${which} is ${bytes} bytes; each key must be at least ${MIN_SECRET_BYTES} bytes (RFC 7518 §3.2)`;
  }
  return null;
}

const httpUrl = (name: string) => (url: string) =>
  /^https?:\/\//.test(url) && URL.canParse(url) ? null : `expected an http(s) URL, got "${name === 'WEBHOOK_URL' ? maskUrl(url) : url}"`;
const hostPort = (item: string) => {
  const match = /^(\[[0-9a-f:]+\]|[^\s:/]+):(\d{1,5})$/i.exec(item);
  return match && Number(match[2]) > 0 && Number(match[2]) < 65536 ? null : `expected host:port, got "${item}"`;
};
const scheme = (schemes: string, what: string) => (url: string) => (new RegExp(`^(${schemes}):`).test(url) ? null : `expected ${what} URLs, got "${url}"`);

/**
 * Every variable, in the order `check` prints them and the README lists
 * them. The key of each row is its field in `Config`.
 */
const VARIABLES = {
  port: intVar('PORT', 3000, [0, 65535], 'TCP port (`0` = any free port)'),
  host: {
    name: 'HOST',
    help: 'address to listen on (dev mode hands out tokens, so it stays on loopback unless you say otherwise)',
    shown: '`0.0.0.0`; `127.0.0.1` in dev mode',
    read: (env: Env, mode: ModeContext) => text(env, 'HOST') ?? (mode.devMode ? '127.0.0.1' : '0.0.0.0'),
    show: (v: string) => v,
  },
  jwtSecret: {
    name: 'JWT_SECRET',
    help: 'HS256/384/512 secret of at least 32 bytes; several comma-separated for rotation',
    shown: '—',
    secret: true,
    read(env: Env, mode: ModeContext): string | null {
      if (mode.devMode) return randomBytes(32).toString('base64url');
      return textVar('JWT_SECRET', '', secretKeyProblem).read(env, mode);
    },
    show: showSecret,
  },
  jwtPublicKey: {
    ...textVar('JWT_PUBLIC_KEY', 'PEM public key: RSA (RS*/PS*), EC (ES256/384/512), Ed25519 (EdDSA)', (pem) =>
      pem.includes('-----BEGIN') ? null : 'expected a PEM public key (-----BEGIN PUBLIC KEY-----)',
    ),
    show: (v: string | null) => (v ? `PEM, ${v.length} characters` : ''),
  },
  jwksUrl: {
    ...textVar('JWT_JWKS_URL', 'a JWKS endpoint (cached, refetched for an unknown `kid`): key rotation without a restart', httpUrl('JWT_JWKS_URL')),
    show: (v: string | null) => (v ? maskUrl(v) : ''),
  },
  jwksFile: textVar('JWT_JWKS_FILE', 'a JWKS file (re-read when it changes): key rotation without a restart'),
  jwtIssuer: textVar('JWT_ISSUER', 'the required `iss` claim; unset = not checked'),
  jwtAudience: textVar('JWT_AUDIENCE', 'the required `aud` claim; unset = not checked (`switchboard check` warns in production)'),
  jwtMaxAgeS: optionalIntVar('JWT_MAX_AGE_S', [60, 366 * 86_400], 'refuse tokens whose `exp` is further off, or whose `iat` is older, than this'),
  jwtTypes: {
    name: 'JWT_TYPES',
    help: 'accepted `typ` headers, comma-separated (a refresh or ID token is refused)',
    shown: 'none, `JWT`, `at+jwt`',
    read(env: Env): string[] | null {
      const types = items(env, 'JWT_TYPES').map(normaliseTyp);
      const bad = types.find((t) => !/^[a-z0-9!#$&^_.+-]+$/.test(t));
      if (bad !== undefined) throw new ConfigError('JWT_TYPES', `expected media type names such as at+jwt, got "${bad}"`);
      return types.length === 0 ? null : types;
    },
    show: (v: string[] | null) => (v === null ? '' : v.join(',')),
  },
  production: {
    name: 'NODE_ENV',
    help: '`production`: JSON logs only, a key is required',
    shown: '—',
    read: (_env: Env, mode: ModeContext) => mode.production,
    show: (v: boolean) => (v ? 'production' : ''),
  },
  redisUrl: {
    ...textVar('REDIS_URL', 'unset: one process, state in memory; set: state in Redis, events across every node sharing it', (url) =>
      /^rediss?:\/\//.test(url) ? null : `expected redis://host:port, got "${url}"`,
    ),
    show: (v: string | null) => (v ? maskUrl(v) : ''),
  },
  redisClusterNodes: listVar(
    'REDIS_CLUSTER_NODES',
    'comma-separated `host:port` of Redis Cluster seed nodes (instead of `REDIS_URL`): state and pub/sub spread over its masters, redirects and failover followed',
    hostPort,
  ),
  redisSentinels: listVar(
    'REDIS_SENTINELS',
    'comma-separated `host:port` of Redis Sentinels (instead of `REDIS_URL`): the current master is found and followed through failover',
    hostPort,
  ),
  redisSentinelMaster: textVar('REDIS_SENTINEL_MASTER', "the master's name the sentinels monitor; required with `REDIS_SENTINELS`"),
  redisUsername: textVar('REDIS_USERNAME', 'Redis ACL user (with `REDIS_PASSWORD`), for every Redis topology'),
  redisPassword: { ...textVar('REDIS_PASSWORD', 'Redis password: the data nodes, and the sentinels too when they require one'), secret: true, show: showSecret },
  redisPrefix: textWithDefault('REDIS_PREFIX', DEFAULT_PREFIX, 'key and channel prefix in Redis'),
  ringTimeoutMs: intVar('RING_TIMEOUT_MS', 30_000, [100, 600_000], 'an unanswered call ends after this'),
  reconnectGraceMs: intVar('RECONNECT_GRACE_MS', 30_000, [100, 3_600_000], 'a session outlives its socket this long'),
  authTimeoutMs: intVar('AUTH_TIMEOUT_MS', 10_000, [100, 600_000], 'a socket must sign in within this'),
  pingIntervalMs: intVar('PING_INTERVAL_MS', 10_000, [100, 300_000], 'the server pings every socket this often (Engine.IO `pingInterval`)'),
  pingTimeoutMs: intVar(
    'PING_TIMEOUT_MS',
    10_000,
    [100, 300_000],
    'a socket that has not answered a ping within this is a transport loss: a dead connection is noticed within `PING_INTERVAL_MS` + this',
  ),
  maxReconnectAttempts: intVar('MAX_RECONNECT_ATTEMPTS', 5, [0, 1000], 'resumptions of one session within one grace window'),
  contacts: oneOfVar<ContactsMode>('CONTACTS', ['all', 'claims'], 'all', "`all`: everyone in the tenant is visible; `claims`: only the token's `contacts`"),
  corsOrigins: listVar('CORS_ORIGINS', 'comma-separated allowed `Origin`s (checked on WebSocket upgrades too); unset = any'),
  stunUrls: listVar('STUN_URLS', 'comma-separated `stun:` URLs handed to clients', scheme('stuns?', 'stun: or stuns:')),
  turnUrls: listVar('TURN_URLS', 'comma-separated `turn:`/`turns:` URLs; with `TURN_SECRET`, TURN REST credentials', scheme('turns?', 'turn: or turns:')),
  turnSecret: { ...textVar('TURN_SECRET', "coturn's `static-auth-secret` (`use-auth-secret`)"), secret: true, show: showSecret },
  turnTtlS: intVar('TURN_TTL_S', 86_400, [60, 30 * 86_400], 'lifetime of TURN credentials'),
  logLevel: oneOfVar('LOG_LEVEL', LOG_LEVELS, 'info', 'pino level: `fatal` … `trace`, `silent`'),
  rateLimits: switchVar('RATE_LIMITS', true, '`off` disables every rate limit and cap: per socket, per user, per address (benchmarks)', ['default']),
  nodeTimeoutMs: intVar('NODE_TIMEOUT_MS', 10_000, [500, 600_000], 'Redis mode: a node silent this long is dead'),
  nodeId: {
    name: 'NODE_ID',
    help: "this process's node id in logs and Redis",
    shown: 'random',
    read: (env: Env) => text(env, 'NODE_ID') ?? `node-${randomUUID().slice(0, 8)}`,
    show: (v: string) => v,
  },
  historyLimit: intVar('HISTORY_LIMIT', DEFAULT_HISTORY_LIMIT, [1, 10_000], 'newest history records kept per user'),
  presenceStatus: switchVar(
    'PRESENCE_STATUS',
    true,
    '`user:status` busy/available to whoever may see a user; `off` for very large CONTACTS=all tenants (one packet per tenant member per call start and end)',
  ),
  maxSessionsPerUser: intVar('MAX_SESSIONS_PER_USER', 10, [1, 10_000], 'live sessions (devices, tabs) one user may hold, across every node'),
  maxUnauthenticatedPerAddress: intVar(
    'MAX_UNAUTHENTICATED_PER_ADDRESS',
    100,
    [1, 1_000_000],
    'sockets from one address not signed in yet; also sets the sign-ins one address may make across every node (twice it at once, then a fifth of it a second). Behind a reverse proxy, set `TRUSTED_PROXIES` (or raise this): see [docs/deploy.md](docs/deploy.md#nginx)',
  ),
  trustedProxies: listVar(
    'TRUSTED_PROXIES',
    'comma-separated addresses or CIDR ranges of your reverse proxies (or `loopback`, `linklocal`, `uniquelocal`): a connection from one of them counts as the nearest untrusted address in its `X-Forwarded-For`, for every per-address limit; unset = the TCP peer, `X-Forwarded-For` ignored ([docs/deploy.md](docs/deploy.md#nginx))',
    trustedProxyError,
  ),
  webhookUrl: {
    ...textVar('WEBHOOK_URL', 'http(s) URL that receives call events as signed JSON POSTs ([docs/deploy.md](docs/deploy.md#webhooks))', httpUrl('WEBHOOK_URL')),
    show: (v: string | null) => (v ? maskUrl(v) : ''),
  },
  webhookSecret: {
    ...textVar('WEBHOOK_SECRET', 'HMAC-SHA256 key of the `X-Switchboard-Signature` header; required with `WEBHOOK_URL`'),
    secret: true,
    show: showSecret,
  },
  ringOffline: oneOfVar<RingOfflineMode>(
    'RING_OFFLINE',
    ['off', 'webhook'],
    'off',
    '`webhook`: a call to a visible user with no live session rings for `RING_TIMEOUT_MS` with no device, and `call.unreachable` goes to `WEBHOOK_URL` so the host app can push (a non-2xx answer ends it as `unavailable`)',
  ),
} satisfies Record<string, Variable<unknown>>;

type Table = typeof VARIABLES;

/** The configuration in effect: one field per row of the table, and the mode. */
export type Config = { [K in keyof Table]: ReturnType<Table[K]['read']> } & {
  /** True when no JWT key is set outside production: a random secret and `POST /dev/token`. */
  devMode: boolean;
};

/** The rows, in order: what `check` prints, the CLI's flags and the README table are made of. */
export const CONFIG_VARIABLES: readonly Pick<Variable<unknown>, 'name' | 'help' | 'shown' | 'secret'>[] = Object.values(VARIABLES);

/** The JWT key variables: at most one may be set, and production needs one. */
const KEY_SOURCES = ['JWT_SECRET', 'JWT_PUBLIC_KEY', 'JWT_JWKS_URL', 'JWT_JWKS_FILE'] as const;

/** What no single row can check: how variables go together. */
function modeOf(env: Env): ModeContext {
  const production = env.NODE_ENV === 'production';
  const keys = KEY_SOURCES.filter((name) => text(env, name) !== null);
  if (keys.length > 1) throw new ConfigError(keys[1]!, `set only one of ${keys.join(', ')}`);
  if (production && keys.length === 0) throw new ConfigError('JWT_SECRET', `production mode needs ${KEY_SOURCES.slice(0, -1).join(', ')} or ${KEY_SOURCES.at(-1)}`);
  return { production, devMode: !production && keys.length === 0 };
}

function checkTogether(config: Config): void {
  if (config.turnUrls.length > 0 && !config.turnSecret) throw new ConfigError('TURN_SECRET', 'TURN_URLS is set but TURN_SECRET is not');
  if (config.webhookUrl && !config.webhookSecret) throw new ConfigError('WEBHOOK_SECRET', 'WEBHOOK_URL is set but WEBHOOK_SECRET is not');
  if (config.ringOffline === 'webhook' && !config.webhookUrl) throw new ConfigError('WEBHOOK_URL', 'RING_OFFLINE=webhook pushes through the webhook, but WEBHOOK_URL is not set');
  const topologies = [
    config.redisUrl ? 'REDIS_URL' : null,
    config.redisClusterNodes.length > 0 ? 'REDIS_CLUSTER_NODES' : null,
    config.redisSentinels.length > 0 ? 'REDIS_SENTINELS' : null,
  ].filter((t) => t !== null);
  if (topologies.length > 1) throw new ConfigError(topologies[1]!, `set only one Redis topology: ${topologies.join(' or ')}`);
  if (config.redisSentinels.length > 0 && !config.redisSentinelMaster) {
    throw new ConfigError('REDIS_SENTINEL_MASTER', 'REDIS_SENTINELS is set but REDIS_SENTINEL_MASTER is not');
  }
  if (config.redisSentinelMaster && config.redisSentinels.length === 0) {
    throw new ConfigError('REDIS_SENTINELS', 'REDIS_SENTINEL_MASTER is set but REDIS_SENTINELS is not');
  }
  if (config.redisClusterNodes.length > 0 && /[{}]/.test(config.redisPrefix)) {
    throw new ConfigError('REDIS_PREFIX', 'a Redis Cluster prefix must not hold a hash tag ({…}): the keys carry their own, so that they spread over the masters');
  }
  if (config.redisUsername && !config.redisPassword) throw new ConfigError('REDIS_PASSWORD', 'REDIS_USERNAME is set but REDIS_PASSWORD is not');
}

export function loadConfig(env: Env = process.env): Config {
  const mode = modeOf(env);
  const entries = Object.entries(VARIABLES).map(([key, variable]) => [key, (variable as Variable<unknown>).read(env, mode)]);
  const config = { ...(Object.fromEntries(entries) as Omit<Config, 'devMode'>), devMode: mode.devMode };
  checkTogether(config);
  return config;
}

/** The effective configuration as `VARIABLE → value` for display: secrets and passwords masked, lists joined. */
export function describeConfig(config: Config): [name: string, value: string][] {
  return Object.entries(VARIABLES).map(([key, variable]) => {
    const value = config[key as keyof Table];
    if (key === 'jwtSecret' && config.devMode) return [variable.name, `${MASK} (dev mode: random, per process)`];
    return [variable.name, (variable as Variable<unknown>).show(value)];
  });
}

/** `switchboard --help`'s line for a variable: its help without Markdown, and its default. */
export function flagHelp(variable: Pick<Variable<unknown>, 'name' | 'help' | 'shown'>): string {
  const fallback = variable.shown === '—' ? '' : ` (default ${plainHelp(variable.shown)})`;
  return `${variable.name}: ${plainHelp(variable.help)}${fallback}`;
}

/** The README's table of variables, made from the rows (a test holds the README to it). */
export function configTableMarkdown(): string {
  const rows = CONFIG_VARIABLES.map((v) => `| \`${v.name}\` | ${v.shown} | ${v.help} |`);
  return ['| variable | default | meaning |', '| --- | --- | --- |', ...rows].join('\n');
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
