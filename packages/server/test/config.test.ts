import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { describe, test } from 'node:test';
import { readFileSync } from 'node:fs';
import { ConfigError, loadConfig } from '../src/index.js';
import { CONFIG_VARIABLES, configTableMarkdown, describeConfig } from '../src/config.js';
import { README, withTable } from '../../../scripts/config-table.js';
import { redisTargetOf } from '../src/store/redis-target.js';

const MAIN = new URL('../src/main.ts', import.meta.url).pathname;

function runMain(env: Record<string, string>) {
  const child = spawn(process.execPath, ['--conditions=source', '--import', 'tsx', MAIN], {
    env: { PATH: process.env.PATH ?? '', HOST: '127.0.0.1', PORT: '0', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  return { child, stderr: () => stderr };
}

describe('configuration', () => {
  test('defaults work on one machine with no other service', () => {
    const config = loadConfig({});
    assert.equal(config.port, 3000);
    assert.equal(config.host, '127.0.0.1', 'dev mode mints tokens for anyone: it listens on loopback only');
    assert.equal(config.devMode, true);
    assert.ok(config.jwtSecret && config.jwtSecret.length >= 32, 'dev mode makes a random secret');
    assert.equal(config.redisUrl, null);
    assert.deepEqual(
      [config.ringTimeoutMs, config.reconnectGraceMs, config.authTimeoutMs, config.maxReconnectAttempts, config.nodeTimeoutMs],
      [30_000, 30_000, 10_000, 5, 10_000],
    );
    assert.equal(config.contacts, 'all');
    assert.equal(config.rateLimits, true);
    assert.notEqual(loadConfig({}).nodeId, config.nodeId, 'each process has its own node id');
  });

  for (const [name, value] of [
    ['PORT', 'eighty'],
    ['PORT', '70000'],
    ['RING_TIMEOUT_MS', '-5'],
    ['CONTACTS', 'friends'],
    ['LOG_LEVEL', 'loud'],
    ['REDIS_URL', 'localhost:6379'],
    ['TURN_URLS', 'http://x.org'],
    ['TURN_SECRET', ''],
    ['STUN_URLS', 'http://x.org'],
    ['RATE_LIMITS', 'maybe'],
    ['TRUSTED_PROXIES', '10.0.0.0/8,nginx.internal'],
    ['TRUSTED_PROXIES', '10.0.0.0/40'],
  ] as const) {
    test(`a bad ${name} is one clear error naming the variable`, () => {
      const env = name === 'TURN_SECRET' ? { TURN_URLS: 'turn:x.org' } : { [name]: value };
      assert.throws(() => loadConfig(env), (err: unknown) => err instanceof ConfigError && err.variable === name);
    });
  }

  test('TRUSTED_PROXIES takes addresses, CIDR ranges and the loopback, linklocal and uniquelocal names; a bad entry is named', () => {
    assert.deepEqual(loadConfig({}).trustedProxies, [], 'none by default: X-Forwarded-For is ignored');
    assert.deepEqual(loadConfig({ TRUSTED_PROXIES: '10.0.0.0/8, 192.168.1.7,::1,uniquelocal' }).trustedProxies, ['10.0.0.0/8', '192.168.1.7', '::1', 'uniquelocal']);
    assert.throws(
      () => loadConfig({ TRUSTED_PROXIES: '10.0.0.1,proxy.local' }),
      (err: unknown) => err instanceof ConfigError && err.variable === 'TRUSTED_PROXIES' && /"proxy\.local"/.test(err.message),
    );
  });

  test('dev mode listens on loopback unless HOST says otherwise; with a key the default is every interface', () => {
    assert.equal(loadConfig({ HOST: '0.0.0.0' }).host, '0.0.0.0');
    assert.equal(loadConfig({ JWT_SECRET: 'k'.repeat(32) }).host, '0.0.0.0');
    assert.equal(loadConfig({ JWT_SECRET: 'k'.repeat(32), HOST: '10.1.2.3' }).host, '10.1.2.3');
  });

  test('each JWT_SECRET key is at least 32 bytes; a comma separates keys, so a secret with a comma is refused, not split', () => {
    const refused = (secret: string, why: RegExp) =>
      assert.throws(() => loadConfig({ JWT_SECRET: secret }), (err: unknown) => err instanceof ConfigError && err.variable === 'JWT_SECRET' && why.test(err.message));
    refused('s3cret', /the key is 6 bytes; each key must be at least 32 bytes/);
    refused('correct horse battery staple, with a comma', /key 1 of 2 \(a comma separates keys for rotation\) is 28 bytes/);
    refused(`${'a'.repeat(32)},short`, /key 2 of 2 .* is 5 bytes/);
    refused('é'.repeat(15), /30 bytes/);
    assert.equal(loadConfig({ JWT_SECRET: `${'a'.repeat(32)}, ${'b'.repeat(40)}` }).jwtSecret, `${'a'.repeat(32)}, ${'b'.repeat(40)}`, 'two long keys rotate');
  });

  test('JWT_MAX_AGE_S is 60 s to a year; JWT_TYPES is a list of media type names', () => {
    assert.equal(loadConfig({}).jwtMaxAgeS, null);
    assert.equal(loadConfig({ JWT_MAX_AGE_S: '3600' }).jwtMaxAgeS, 3600);
    for (const bad of ['10', 'forever', '99999999999']) {
      assert.throws(() => loadConfig({ JWT_MAX_AGE_S: bad }), (err: unknown) => err instanceof ConfigError && err.variable === 'JWT_MAX_AGE_S');
    }
    assert.deepEqual(loadConfig({ JWT_TYPES: 'JWT, application/AT+JWT' }).jwtTypes, ['jwt', 'at+jwt']);
    assert.throws(() => loadConfig({ JWT_TYPES: 'a b' }), (err: unknown) => err instanceof ConfigError && err.variable === 'JWT_TYPES');
  });

  test('one Redis topology at most, Sentinel with its master name, a username with its password, a cluster prefix without a hash tag: each refusal names the variable', () => {
    const refusals: [Record<string, string>, string, RegExp][] = [
      [{ REDIS_URL: 'redis://10.0.0.5:6379', REDIS_SENTINELS: '10.0.0.6:26379', REDIS_SENTINEL_MASTER: 'main' }, 'REDIS_SENTINELS', /only one Redis topology: REDIS_URL or REDIS_SENTINELS/],
      [{ REDIS_SENTINELS: '10.0.0.6:26379' }, 'REDIS_SENTINEL_MASTER', /REDIS_SENTINELS is set but REDIS_SENTINEL_MASTER is not/],
      [{ REDIS_SENTINEL_MASTER: 'main' }, 'REDIS_SENTINELS', /REDIS_SENTINEL_MASTER is set but REDIS_SENTINELS is not/],
      [{ REDIS_SENTINELS: '10.0.0.6', REDIS_SENTINEL_MASTER: 'main' }, 'REDIS_SENTINELS', /host:port/],
      [{ REDIS_SENTINELS: '10.0.0.6:99999', REDIS_SENTINEL_MASTER: 'main' }, 'REDIS_SENTINELS', /host:port/],
      [{ REDIS_URL: 'redis://10.0.0.5:6379', REDIS_USERNAME: 'sb' }, 'REDIS_PASSWORD', /REDIS_USERNAME is set but REDIS_PASSWORD is not/],
      [{ REDIS_URL: 'redis://10.0.0.5:6379', REDIS_CLUSTER_NODES: '10.0.0.7:7000' }, 'REDIS_CLUSTER_NODES', /only one Redis topology: REDIS_URL or REDIS_CLUSTER_NODES/],
      [{ REDIS_CLUSTER_NODES: '10.0.0.7:7000', REDIS_SENTINELS: '10.0.0.6:26379', REDIS_SENTINEL_MASTER: 'main' }, 'REDIS_SENTINELS', /REDIS_CLUSTER_NODES or REDIS_SENTINELS/],
      [{ REDIS_CLUSTER_NODES: '10.0.0.7' }, 'REDIS_CLUSTER_NODES', /host:port/],
      [{ REDIS_CLUSTER_NODES: '10.0.0.7:7000', REDIS_PREFIX: '{sb}:' }, 'REDIS_PREFIX', /hash tag/],
      [{ RING_OFFLINE: 'webhook' }, 'WEBHOOK_URL', /RING_OFFLINE=webhook .* WEBHOOK_URL is not set/],
      [{ RING_OFFLINE: 'push' }, 'RING_OFFLINE', /off|webhook/],
    ];
    for (const [env, variable, why] of refusals) {
      assert.throws(() => loadConfig(env), (err: unknown) => err instanceof ConfigError && err.variable === variable && why.test(err.message), JSON.stringify(env));
    }
    const sentinel = loadConfig({ REDIS_SENTINELS: '10.0.0.6:26379, [::1]:26380', REDIS_SENTINEL_MASTER: 'main', REDIS_PASSWORD: 'pw' });
    assert.deepEqual(sentinel.redisSentinels, ['10.0.0.6:26379', '[::1]:26380']);
    assert.deepEqual(redisTargetOf(sentinel), {
      kind: 'sentinel',
      sentinels: [
        { host: '10.0.0.6', port: 26379 },
        { host: '::1', port: 26380 },
      ],
      master: 'main',
      password: 'pw',
      sentinelAuth: false,
    });
    const cluster = loadConfig({ REDIS_CLUSTER_NODES: '10.0.0.7:7000,10.0.0.8:7000', REDIS_USERNAME: 'sb', REDIS_PASSWORD: 'pw' });
    assert.deepEqual(redisTargetOf(cluster), {
      kind: 'cluster',
      nodes: [
        { host: '10.0.0.7', port: 7000 },
        { host: '10.0.0.8', port: 7000 },
      ],
      username: 'sb',
      password: 'pw',
    });
    assert.equal(redisTargetOf(loadConfig({})), null, 'memory mode');
  });

  test('every variable of the table shows what is in effect in `check` once set (secrets masked)', () => {
    const samples: Record<string, Record<string, string>> = {
      PORT: { PORT: '4321' },
      HOST: { HOST: '10.9.8.7' },
      JWT_SECRET: { JWT_SECRET: 's'.repeat(40) },
      JWT_PUBLIC_KEY: { JWT_PUBLIC_KEY: '-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA\n-----END PUBLIC KEY-----' },
      JWT_JWKS_URL: { JWT_JWKS_URL: 'https://idp.example.com/jwks.json' },
      JWT_JWKS_FILE: { JWT_JWKS_FILE: '/etc/switchboard/jwks.json' },
      JWT_ISSUER: { JWT_ISSUER: 'https://idp.example.com' },
      JWT_AUDIENCE: { JWT_AUDIENCE: 'switchboard' },
      JWT_MAX_AGE_S: { JWT_MAX_AGE_S: '3600' },
      JWT_TYPES: { JWT_TYPES: 'at+jwt' },
      NODE_ENV: { NODE_ENV: 'production', JWT_SECRET: 's'.repeat(40) },
      REDIS_URL: { REDIS_URL: 'redis://:pw@10.0.0.5:6379' },
      REDIS_PREFIX: { REDIS_PREFIX: 'app:' },
      REDIS_CLUSTER_NODES: { REDIS_CLUSTER_NODES: '10.0.0.7:7000,10.0.0.8:7000' },
      REDIS_SENTINELS: { REDIS_SENTINELS: '10.0.0.5:26379,10.0.0.6:26379', REDIS_SENTINEL_MASTER: 'main' },
      REDIS_SENTINEL_MASTER: { REDIS_SENTINELS: '10.0.0.5:26379', REDIS_SENTINEL_MASTER: 'main' },
      REDIS_USERNAME: { REDIS_URL: 'redis://10.0.0.5:6379', REDIS_USERNAME: 'switchboard', REDIS_PASSWORD: 'redis-password' },
      REDIS_PASSWORD: { REDIS_URL: 'redis://10.0.0.5:6379', REDIS_PASSWORD: 'redis-password' },
      RING_TIMEOUT_MS: { RING_TIMEOUT_MS: '45000' },
      RECONNECT_GRACE_MS: { RECONNECT_GRACE_MS: '45000' },
      AUTH_TIMEOUT_MS: { AUTH_TIMEOUT_MS: '4500' },
      PING_INTERVAL_MS: { PING_INTERVAL_MS: '5000' },
      PING_TIMEOUT_MS: { PING_TIMEOUT_MS: '4000' },
      MAX_RECONNECT_ATTEMPTS: { MAX_RECONNECT_ATTEMPTS: '7' },
      CONTACTS: { CONTACTS: 'claims' },
      CORS_ORIGINS: { CORS_ORIGINS: 'https://app.example.com' },
      STUN_URLS: { STUN_URLS: 'stun:stun.example.com:3478' },
      TURN_URLS: { TURN_URLS: 'turn:turn.example.com:3478', TURN_SECRET: 'turn-secret' },
      TURN_SECRET: { TURN_SECRET: 'turn-secret' },
      TURN_TTL_S: { TURN_TTL_S: '600' },
      LOG_LEVEL: { LOG_LEVEL: 'debug' },
      RATE_LIMITS: { RATE_LIMITS: 'off' },
      NODE_TIMEOUT_MS: { NODE_TIMEOUT_MS: '7000' },
      NODE_ID: { NODE_ID: 'node-seven' },
      HISTORY_LIMIT: { HISTORY_LIMIT: '50' },
      PRESENCE_STATUS: { PRESENCE_STATUS: 'off' },
      MAX_SESSIONS_PER_USER: { MAX_SESSIONS_PER_USER: '3' },
      MAX_UNAUTHENTICATED_PER_ADDRESS: { MAX_UNAUTHENTICATED_PER_ADDRESS: '500' },
      TRUSTED_PROXIES: { TRUSTED_PROXIES: '10.0.0.0/8,loopback,fd00::1' },
      WEBHOOK_URL: { WEBHOOK_URL: 'https://hooks.example.com/x', WEBHOOK_SECRET: 'hook-secret' },
      WEBHOOK_SECRET: { WEBHOOK_SECRET: 'hook-secret' },
      RING_OFFLINE: { RING_OFFLINE: 'webhook', WEBHOOK_URL: 'https://hooks.example.com/x', WEBHOOK_SECRET: 'hook-secret' },
    };
    assert.deepEqual(Object.keys(samples).sort(), CONFIG_VARIABLES.map((v) => v.name).sort(), 'a sample for every variable of the table');
    for (const variable of CONFIG_VARIABLES) {
      const env = samples[variable.name]!;
      const shown = new Map(describeConfig(loadConfig(env)));
      const value = shown.get(variable.name);
      assert.ok(value, `${variable.name} shows a value`);
      if (variable.secret) assert.ok(!value.includes(env[variable.name]!), `${variable.name} is masked`);
    }
  });

  test('the README table of variables is the one table, row for row', () => {
    const readme = readFileSync(README, 'utf8');
    assert.equal(readme, withTable(readme, configTableMarkdown()), 'README.md is out of date: run npm run docs:config');
  });

  test('production mode refuses to start without a key, with one clear line', async () => {
    const { child, stderr } = runMain({ NODE_ENV: 'production' });
    const [code] = (await once(child, 'exit')) as [number];
    assert.equal(code, 78);
    assert.equal(stderr().trim().split('\n').length, 1);
    assert.match(stderr(), /JWT_SECRET/);
  });

  test('a bad value stops the process with one line naming it', async () => {
    const { child, stderr } = runMain({ JWT_SECRET: 'x'.repeat(40), RECONNECT_GRACE_MS: 'soon' });
    const [code] = (await once(child, 'exit')) as [number];
    assert.equal(code, 78);
    assert.match(stderr(), /^switchboard: configuration error: RECONNECT_GRACE_MS: /);
  });

  test('in production it logs only JSON lines to stdout, serves, and exits cleanly on SIGTERM', async () => {
    const { child } = runMain({ NODE_ENV: 'production', JWT_SECRET: 'x'.repeat(40), LOG_LEVEL: 'info' });
    const lines = createInterface({ input: child.stdout });
    const seen: unknown[] = [];
    let port = 0;
    for await (const line of lines) {
      const entry = JSON.parse(line) as { msg: string; port?: number };
      seen.push(entry);
      if (entry.msg === 'switchboard listening') {
        port = entry.port!;
        break;
      }
    }
    assert.ok(port > 0);
    assert.equal((await fetch(`http://127.0.0.1:${port}/healthz`)).status, 200);
    assert.equal((await fetch(`http://127.0.0.1:${port}/dev/token`, { method: 'POST' })).status, 404);
    const exited = once(child, 'exit');
    child.kill('SIGTERM');
    const [code] = (await exited) as [number];
    assert.equal(code, 0);
  });
});
