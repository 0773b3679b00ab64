/**
 * The `switchboard` CLI, run as a real process: serve, token, check, --help,
 * and the exit codes scripts rely on (0, 64, 69, 78).
 */
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { loadConfig, TokenVerifier } from '../src/index.js';
import { checkRedisVersion } from '../src/main.js';
import { freePort, sharedRedis } from './cluster/harness.js';
import { openSocket } from './helpers.js';
import { runCli, startServe } from './ops-helpers.js';

const SECRET = 'cli-test-secret-0123456789-abcdefghij';
const JWT = /^eyJ[\w-]+\.eyJ[\w-]+\.[\w-]+$/;

function claimsOf(token: string): Record<string, unknown> {
  return JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString()) as Record<string, unknown>;
}

describe('switchboard token and serve', () => {
  test('a token from `token` is accepted by `serve`; serve flags override the environment', async () => {
    const minted = await runCli(['token', '--user', 'alice', '--name', 'Alice', '--tenant', 'acme', '--ttl', '10m', '--contacts', 'bob, carol'], {
      JWT_SECRET: SECRET,
    });
    assert.equal(minted.code, 0, minted.stderr);
    assert.equal(minted.stderr, '');
    assert.match(minted.stdout, /\n$/);
    const token = minted.stdout.trim();
    assert.match(token, JWT, 'the bare token on one line, nothing else');
    const claims = claimsOf(token);
    assert.equal(claims.sub, 'alice');
    assert.equal(claims.tenant, 'acme');
    assert.deepEqual(claims.contacts, ['bob', 'carol']);
    assert.equal((claims.exp as number) - (claims.iat as number), 600);

    // RING_TIMEOUT_MS in the environment is invalid: the flag wins, or the node would not start.
    const node = await startServe(['--port', '0', '--host', '127.0.0.1', '--ring-timeout-ms', '4321'], {
      JWT_SECRET: SECRET,
      RING_TIMEOUT_MS: 'soon',
      LOG_LEVEL: 'info',
    });
    try {
      const client = await openSocket(node, { via: 'handshake', token });
      const success = await client.next('auth:success');
      assert.deepEqual(success.user, { id: 'alice', name: 'Alice' });
      assert.equal(success.ringTimeoutMs, 4321);
      client.close();
    } finally {
      assert.equal(await node.stop('SIGTERM'), 0);
    }
  });

  test('`token` honours JWT_ISSUER and JWT_AUDIENCE', async () => {
    const env = { JWT_SECRET: SECRET, JWT_ISSUER: 'https://id.example.com', JWT_AUDIENCE: 'switchboard' };
    const { code, stdout } = await runCli(['token', '--user', 'bob'], env);
    assert.equal(code, 0);
    const token = stdout.trim();
    assert.equal(claimsOf(token).iss, 'https://id.example.com');
    assert.equal(claimsOf(token).aud, 'switchboard');
    assert.equal((await new TokenVerifier(loadConfig(env)).verify(token)).userId, 'bob');
    await assert.rejects(new TokenVerifier(loadConfig({ ...env, JWT_AUDIENCE: 'other' })).verify(token));
  });

  test('`token` without a secret, or with only a public key, is a configuration error (78) saying so', async () => {
    const { publicKey } = generateKeyPairSync('ed25519');
    const pem = publicKey.export({ type: 'spki', format: 'pem' }).toString();
    for (const env of [{}, { JWT_PUBLIC_KEY: pem }] as Record<string, string>[]) {
      const { code, stdout, stderr } = await runCli(['token', '--user', 'alice'], env);
      assert.equal(code, 78, stderr);
      assert.equal(stdout, '', 'no token on stdout');
      assert.match(stderr, /^switchboard: configuration error: JWT_SECRET: /);
      assert.equal(stderr.trim().split('\n').length, 1);
    }
    assert.match((await runCli(['token', '--user', 'alice'], { JWT_PUBLIC_KEY: pem })).stderr, /JWT_PUBLIC_KEY/);
  });

  test('usage errors exit 64 with a line saying what is wrong', async () => {
    for (const [args, pattern] of [
      [['token'], /--user is required/],
      [['token', '--user', 'alice', '--ttl', 'forever'], /--ttl/],
      [['token', '--user', 'alice', '--colour', 'red'], /colour/],
      [['token', 'alice'], /positional|unexpected/i],
      [['serve', '--port'], /--port/],
      [['frobnicate'], /unknown command "frobnicate"/],
    ] as const) {
      const { code, stdout, stderr } = await runCli([...args], { JWT_SECRET: SECRET });
      assert.equal(code, 64, `${args.join(' ')}: ${stderr}`);
      assert.equal(stdout, '');
      assert.match(stderr, pattern);
    }
  });
});

describe('switchboard check', () => {
  let redis: { url: string; release(): Promise<void> };
  before(async () => {
    redis = await sharedRedis();
  });
  after(async () => {
    await redis.release();
  });

  test('a Redis older than 7 (no sharded pub/sub) is refused by name, whichever topology found it; 7 and later pass', () => {
    assert.throws(() => checkRedisVersion('6.2.14', 'master 10.0.0.5:6379'), /^Error: master 10\.0\.0\.5:6379 runs Redis 6\.2\.14, too old: Switchboard needs Redis >= 7 \(sharded pub\/sub\)$/);
    assert.throws(() => checkRedisVersion('5.0.7', 'Redis'), /Redis 5\.0\.7, too old/);
    for (const ok of ['7.0.15', '7.2.4', '8.0.0', 'unknown']) assert.doesNotThrow(() => checkRedisVersion(ok, 'Redis'), ok);
  });

  test('a valid configuration with a reachable Redis: exit 0, every variable printed, secrets masked', async () => {
    const withPassword = new URL(redis.url);
    withPassword.password = 'hunter2-redis';
    const secrets = { JWT_SECRET: SECRET, TURN_SECRET: 'turn-secret-42', WEBHOOK_SECRET: 'webhook-secret-42' };
    const { code, stdout, stderr } = await runCli(['check'], {
      ...secrets,
      REDIS_URL: withPassword.toString(),
      TURN_URLS: 'turn:turn.example.com:3478',
      WEBHOOK_URL: 'https://hooks.example.com/switchboard?key=query-secret-42',
      RING_TIMEOUT_MS: '45000',
    });
    assert.equal(code, 0, stderr);
    assert.match(stdout, /^configuration: valid/);
    assert.match(stdout, /RING_TIMEOUT_MS\s+45000/);
    assert.match(stdout, /REDIS_URL\s+redis:\/\/:\*\*\*\*@/);
    assert.match(stdout, /JWT_SECRET\s+\*\*\*\*/);
    assert.match(stdout, /redis: reachable \(one Redis\): Redis at .*\(Redis \d+\./);
    for (const secret of [...Object.values(secrets), 'hunter2-redis', 'query-secret-42']) {
      assert.ok(!stdout.includes(secret) && !stderr.includes(secret), `${secret} is never printed`);
    }

    const json = await runCli(['check', '--json'], { JWT_SECRET: SECRET, REDIS_URL: redis.url });
    assert.equal(json.code, 0);
    const parsed = JSON.parse(json.stdout) as { ok: boolean; config: Record<string, string>; redis: { ok: boolean } };
    assert.equal(parsed.ok, true);
    assert.equal(parsed.redis.ok, true);
    assert.ok(!json.stdout.includes(SECRET));
  });

  test('production without JWT_AUDIENCE or JWT_MAX_AGE_S: valid, with a warning for each (text and JSON)', async () => {
    const env = { NODE_ENV: 'production', JWT_SECRET: SECRET, CORS_ORIGINS: 'https://app.example.com' };
    const text = await runCli(['check'], env);
    assert.equal(text.code, 0, text.stderr);
    assert.match(text.stdout, /^warning: JWT_AUDIENCE is not set: a token your issuer made for another service is accepted here/m);
    assert.match(text.stdout, /^warning: JWT_MAX_AGE_S is not set/m);
    const json = await runCli(['check', '--json'], env);
    assert.equal((JSON.parse(json.stdout) as { warnings: string[] }).warnings.length, 2);
    const tied = await runCli(['check', '--json'], { ...env, JWT_AUDIENCE: 'switchboard', JWT_MAX_AGE_S: '3600' });
    assert.deepEqual((JSON.parse(tied.stdout) as { warnings: string[] }).warnings, []);
  });

  test('a bad value: exit 78 and one line naming the variable (flags too)', async () => {
    const bad = await runCli(['check'], { JWT_SECRET: SECRET, RECONNECT_GRACE_MS: 'soon' });
    assert.equal(bad.code, 78);
    assert.match(bad.stderr, /^switchboard: configuration error: RECONNECT_GRACE_MS: /);
    assert.equal(bad.stderr.trim().split('\n').length, 1);
    const badFlag = await runCli(['check', '--webhook-url', 'ftp://example.com'], { JWT_SECRET: SECRET, WEBHOOK_SECRET: 'x'.repeat(20) });
    assert.equal(badFlag.code, 78);
    assert.match(badFlag.stderr, /WEBHOOK_URL/);
    const noSecret = await runCli(['check'], { JWT_SECRET: SECRET, WEBHOOK_URL: 'https://hooks.example.com/x' });
    assert.equal(noSecret.code, 78);
    assert.match(noSecret.stderr, /WEBHOOK_SECRET/);
  });

  test('an unreachable Redis: exit 69 within seconds, with the address and never the password', async () => {
    const port = await freePort();
    const { code, stderr, stdout, ms } = await runCli(['check'], { JWT_SECRET: SECRET, REDIS_URL: `redis://:hunter2@127.0.0.1:${port}` });
    assert.equal(code, 69, stderr);
    assert.match(stderr, new RegExp(`Redis at redis://:\\*\\*\\*\\*@127\\.0\\.0\\.1:${port} is unreachable`));
    assert.match(stderr, /ECONNREFUSED/);
    assert.ok(!stderr.includes('hunter2') && !stdout.includes('hunter2'));
    assert.ok(ms < 15_000);
  });

  test('serve refuses to start on an unreachable Redis with exit 69', async () => {
    const port = await freePort();
    const { code, stderr } = await runCli(['serve', '--port', '0', '--redis-url', `redis://127.0.0.1:${port}`], { JWT_SECRET: SECRET });
    assert.equal(code, 69, stderr);
    assert.match(stderr, /unreachable|unusable/);
  });
});

describe('switchboard --help', () => {
  test('general and per-command help on stdout, exit 0, with the exit codes', async () => {
    const general = await runCli(['--help']);
    assert.equal(general.code, 0);
    assert.match(general.stdout, /^Usage: switchboard <command>/);
    for (const name of ['serve', 'token', 'check']) assert.match(general.stdout, new RegExp(`\\n  ${name} `));
    for (const code of ['64', '69', '78']) assert.match(general.stdout, new RegExp(`\\n  ${code} `));
    for (const [name, flag] of [
      ['serve', '--redis-url <value>'],
      ['token', '--ttl <duration>'],
      ['check', '--json'],
    ] as const) {
      const help = await runCli([name, '--help']);
      assert.equal(help.code, 0, name);
      assert.match(help.stdout, new RegExp(`^Usage: switchboard ${name}`));
      assert.ok(help.stdout.includes(flag), `${name} --help lists ${flag}`);
      assert.match(help.stdout, /Exit codes:/);
    }
    const none = await runCli([]);
    assert.equal(none.code, 64, 'no command is a usage error');
    assert.match(none.stderr, /^Usage: switchboard/);
  });
});
