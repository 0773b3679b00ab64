#!/usr/bin/env node
/**
 * `switchboard`: run and operate a node from a shell or a script.
 *
 *   switchboard serve [--port 3000] [--redis-url redis://…] …   start a node (what `npm start` runs)
 *   switchboard token --user alice [--name Alice] [--ttl 1h]     print a signed token
 *   switchboard check                                          validate the configuration, reach Redis
 *
 * Exit codes follow sysexits.h so scripts and service managers can tell a
 * bad command line (64) from a bad configuration (78) from a service that
 * does not answer (69).
 */
import { parseArgs } from 'node:util';
import { mintToken, TokenVerifier } from './auth/tokens.js';
import { CONFIG_VARIABLES, ConfigError, configWarnings, describeConfig, flagHelp, loadConfig, type Config } from './config.js';
import { EXIT, probeRedis, serve, type RedisProbe } from './main.js';
import { describeTarget, redisTargetOf, type RedisTarget } from './store/redis-target.js';

type Values = Record<string, string | boolean | undefined>;
type Env = Record<string, string | undefined>;
/** A command-line option; `variable` when it stands for a configuration variable. */
type Option = { type: 'string' | 'boolean'; help: string; placeholder?: string; variable?: string };

interface Command {
  summary: string;
  usage: string;
  options: Record<string, Option>;
  /** Resolves with the exit code, or null when the command keeps running (serve). */
  run(values: Values, env: Env): Promise<number | null>;
  /** Extra paragraphs for `--help`. */
  notes?: string;
}

class UsageError extends Error {}

/** `RING_TIMEOUT_MS` → `ring-timeout-ms`. */
const flagOf = (variable: string) => variable.toLowerCase().replaceAll('_', '-');

function configFlags(filter: (name: string) => boolean = () => true): Record<string, Option> {
  return Object.fromEntries(
    CONFIG_VARIABLES.filter((v) => filter(v.name)).map((v) => [
      flagOf(v.name),
      { type: 'string' as const, help: flagHelp(v), placeholder: 'value', variable: v.name },
    ]),
  );
}

/** The environment with the configuration flags given on the command line put over it. */
function environment(options: Record<string, Option>, values: Values, env: Env): Env {
  const merged: Env = { ...env };
  for (const [flag, option] of Object.entries(options)) {
    const value = values[flag];
    if (option.variable && typeof value === 'string') merged[option.variable] = value;
  }
  return merged;
}

function out(line: string): void {
  process.stdout.write(`${line}\n`);
}

function complain(message: string): void {
  process.stderr.write(`switchboard: ${message}\n`);
}

/** Loads the configuration; a bad value is reported and becomes exit code 78. */
function configOrExitCode(env: Env): Config | number {
  try {
    return loadConfig(env);
  } catch (err) {
    if (err instanceof ConfigError) {
      complain(`configuration error: ${err.message}`);
      return EXIT.config;
    }
    throw err;
  }
}

const MAX_CLAIM_LENGTH = 256;
const TTL_UNITS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86_400 };

/** `90`, `90s`, `15m`, `1h`, `7d` → seconds. */
function parseTtl(raw: string): number {
  const match = /^(\d+)([smhd]?)$/.exec(raw.trim());
  const seconds = match ? Number(match[1]) * TTL_UNITS[match[2] || 's']! : NaN;
  if (!Number.isSafeInteger(seconds) || seconds <= 0) {
    throw new UsageError(`--ttl: expected a duration such as 3600, 90s, 15m, 1h or 7d, got "${raw}"`);
  }
  return seconds;
}

function claim(values: Values, flag: string, required = false): string | undefined {
  const value = values[flag];
  if (typeof value !== 'string' || value === '') {
    if (required) throw new UsageError(`--${flag} is required`);
    return undefined;
  }
  if (value.length > MAX_CLAIM_LENGTH) throw new UsageError(`--${flag}: at most ${MAX_CLAIM_LENGTH} characters`);
  return value;
}

const commands: Record<string, Command> = {
  serve: {
    summary: 'start a node (what `npm start` runs); stops with a drain on SIGTERM or SIGINT',
    usage: 'switchboard serve [--port 3000] [--redis-url redis://host:6379] [--<variable> value …]',
    options: configFlags(),
    notes:
      'Each flag sets the environment variable of the same name, over its value in the environment.\n' +
      'Prefer the environment (or an EnvironmentFile) for secrets: flags show in `ps`.',
    async run(values, env) {
      await serve(environment(this.options, values, env));
      return null;
    },
  },

  token: {
    summary: 'print a token for a user, signed HS256 with JWT_SECRET (honours JWT_ISSUER and JWT_AUDIENCE)',
    usage: 'switchboard token --user <id> [--name <name>] [--tenant <tenant>] [--ttl 1h] [--contacts a,b]',
    options: {
      user: { type: 'string', help: 'the user id (the sub claim); required', placeholder: 'id' },
      name: { type: 'string', help: 'display name (the name claim)', placeholder: 'name' },
      tenant: { type: 'string', help: 'tenant (the tenant claim); absent = the default tenant', placeholder: 'tenant' },
      ttl: { type: 'string', help: 'lifetime: seconds, or 90s, 15m, 1h, 7d (default 1h)', placeholder: 'duration' },
      contacts: { type: 'string', help: 'comma-separated user ids this user may see and call (CONTACTS=claims)', placeholder: 'ids' },
      ...configFlags((name) => name.startsWith('JWT_')),
    },
    notes: 'Prints the bare token on one line of stdout, nothing else, e.g. TOKEN=$(switchboard token --user alice).',
    async run(values, env) {
      const userId = claim(values, 'user', true)!;
      const name = claim(values, 'name');
      const tenant = claim(values, 'tenant');
      const ttlS = typeof values.ttl === 'string' ? parseTtl(values.ttl) : 3600;
      const contacts =
        typeof values.contacts === 'string'
          ? values.contacts
              .split(',')
              .map((c) => c.trim())
              .filter(Boolean)
          : undefined;
      const config = configOrExitCode(environment(this.options, values, env));
      if (typeof config === 'number') return config;
      if (config.devMode) {
        complain('configuration error: JWT_SECRET: not set; switchboard token signs with the JWT_SECRET your nodes verify with');
        return EXIT.config;
      }
      if (!config.jwtSecret) {
        const source = config.jwtPublicKey ? 'JWT_PUBLIC_KEY' : config.jwksUrl ? 'JWT_JWKS_URL' : 'JWT_JWKS_FILE';
        complain(
          `configuration error: JWT_SECRET: not set (${source} is): a public key only verifies; mint tokens with the private key of your identity provider`,
        );
        return EXIT.config;
      }
      const token = await mintToken(config.jwtSecret, {
        userId,
        ...(name !== undefined ? { name } : {}),
        ...(tenant !== undefined ? { tenant } : {}),
        ...(contacts !== undefined ? { contacts } : {}),
        ttlS,
        issuer: config.jwtIssuer,
        audience: config.jwtAudience,
      });
      out(token);
      return EXIT.ok;
    },
  },

  check: {
    summary: 'validate the configuration, reach Redis when REDIS_URL is set, print the effective configuration (secrets masked)',
    usage: 'switchboard check [--json] [--<variable> value …]',
    options: {
      json: { type: 'boolean', help: 'print JSON instead of text' },
      ...configFlags(),
    },
    notes: 'Exits 0 when the configuration is valid and every service it names answers, 78 on a bad value, 69 when Redis does not answer.',
    async run(values, env) {
      const json = values.json === true;
      const config = configOrExitCode(environment(this.options, values, env));
      if (typeof config === 'number') return config;
      try {
        new TokenVerifier(config).close();
      } catch (err) {
        const variable = config.jwtPublicKey ? 'JWT_PUBLIC_KEY' : config.jwksFile ? 'JWT_JWKS_FILE' : 'JWT_SECRET';
        complain(`configuration error: ${variable}: the key cannot be used (${err instanceof Error ? err.message : String(err)})`);
        return EXIT.config;
      }
      const rows = describeConfig(config);
      const warnings = configWarnings(config);
      const mode = config.devMode ? 'dev mode' : config.production ? 'production' : 'development';
      const target = redisTargetOf(config);
      const store = target ? 'redis' : 'memory';
      let redis: ({ ok: true } & RedisProbe) | { ok: false; error: string } | null = null;
      if (target) {
        try {
          redis = { ok: true, ...(await probeRedis(target)) };
        } catch (err) {
          redis = { ok: false, error: err instanceof Error ? err.message : String(err) };
        }
      }
      if (json) {
        out(JSON.stringify({ ok: redis?.ok !== false, mode, store, config: Object.fromEntries(rows), redis, warnings }, null, 2));
      } else {
        out(`configuration: valid (${mode}, store: ${store}, node ${config.nodeId})`);
        const width = Math.max(...rows.map(([name]) => name.length));
        for (const [name, value] of rows) out(`  ${name.padEnd(width)}  ${value === '' ? '-' : value}`);
        for (const warning of warnings) out(`warning: ${warning}`);
        if (redis?.ok) for (const line of describeProbe(target!, redis)) out(line);
      }
      if (redis && !redis.ok) {
        complain(`${describeTarget(target!)} is unreachable or unusable: ${redis.error}`);
        return EXIT.unavailable;
      }
      return EXIT.ok;
    },
  },
};

/** What `check` found of the deployment's Redis, line by line. */
function describeProbe(target: RedisTarget, probe: RedisProbe): string[] {
  if (probe.topology === 'single') return [`redis: reachable (one Redis): ${describeTarget(target)} (Redis ${probe.version}, PING ${probe.latencyMs} ms)`];
  if (probe.topology === 'cluster') {
    const masters = probe.masters ?? [];
    return [
      `redis: Cluster topology: ${masters.length} master(s) holding all 16384 slots (Redis ${probe.version}, slowest PING ${probe.latencyMs} ms)`,
      ...masters.map((m) => `  master ${m.address}: ${m.slots} slots, ${m.replicas} replica(s)`),
    ];
  }
  const lines = [
    `redis: Sentinel topology: master "${target.kind === 'sentinel' ? target.master : ''}" at ${probe.master ?? '?'} (Redis ${probe.version}, PING ${probe.latencyMs} ms, ${probe.replicas ?? 0} replica(s) connected)`,
  ];
  for (const s of probe.sentinels ?? []) lines.push(`  sentinel ${s.address}: ${s.ok ? `master at ${s.master}` : `unreachable or unusable: ${s.error}`}`);
  return lines;
}

const EXIT_CODES_HELP = `Exit codes:
  0   ok
  1   failure (e.g. the port is taken)
  64  usage error: unknown command or option, a missing or bad command option
  69  a service is unreachable: Redis does not answer (check, serve)
  78  configuration error: a bad environment variable or flag (message names it)`;

function generalHelp(): string {
  const width = Math.max(...Object.keys(commands).map((c) => c.length));
  return [
    'Usage: switchboard <command> [options]',
    '',
    'Commands:',
    ...Object.entries(commands).map(([name, c]) => `  ${name.padEnd(width)}  ${c.summary}`),
    '',
    'Settings are environment variables (see README.md, "Configuration"); serve and check',
    'also take each one as a flag that overrides it: PORT → --port, REDIS_URL → --redis-url.',
    'Run `switchboard <command> --help` for the options of one command.',
    '',
    EXIT_CODES_HELP,
  ].join('\n');
}

function commandHelp(name: string, command: Command): string {
  const entries = Object.entries(command.options).map(([flag, o]) => {
    const left = o.type === 'boolean' ? `--${flag}` : `--${flag} <${o.placeholder ?? 'value'}>`;
    return [left, o.help] as const;
  });
  entries.push(['-h, --help', 'print this help']);
  const width = Math.max(...entries.map(([left]) => left.length));
  return [
    `Usage: ${command.usage}`,
    '',
    `switchboard ${name}: ${command.summary}.`,
    ...(command.notes ? ['', command.notes] : []),
    '',
    'Options:',
    ...entries.map(([left, help]) => `  ${left.padEnd(width)}  ${help}`),
    '',
    EXIT_CODES_HELP,
  ].join('\n');
}

/** Runs one command line; resolves with the exit code, or null while `serve` runs. */
async function main(argv: string[], env: Env = process.env): Promise<number | null> {
  const [name, ...rest] = argv;
  if (name === undefined) {
    process.stderr.write(`${generalHelp()}\n`);
    return EXIT.usage;
  }
  if (name === '--help' || name === '-h' || name === 'help') {
    const topic = rest[0] !== undefined ? commands[rest[0]] : undefined;
    out(topic ? commandHelp(rest[0]!, topic) : generalHelp());
    return EXIT.ok;
  }
  const command = Object.hasOwn(commands, name) ? commands[name] : undefined;
  if (!command) {
    complain(`unknown command "${name}"; run switchboard --help`);
    return EXIT.usage;
  }
  try {
    const options = Object.fromEntries(Object.entries(command.options).map(([flag, o]) => [flag, { type: o.type }]));
    const { values } = parseArgs({ args: rest, options: { ...options, help: { type: 'boolean', short: 'h' } }, strict: true, allowPositionals: false });
    if (values.help) {
      out(commandHelp(name, command));
      return EXIT.ok;
    }
    return await command.run(values, env);
  } catch (err) {
    const isUsage = err instanceof UsageError || (err instanceof TypeError && String((err as { code?: unknown }).code).startsWith('ERR_PARSE_ARGS'));
    if (!isUsage) throw err;
    complain(`${name}: ${err.message}; run switchboard ${name} --help`);
    return EXIT.usage;
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    if (code !== null) process.exitCode = code;
  },
  (err: unknown) => {
    complain(err instanceof Error ? (err.stack ?? err.message) : String(err));
    process.exitCode = EXIT.failure;
  },
);
