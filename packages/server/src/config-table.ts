/**
 * The pieces the configuration table (config.ts) is built from: how a
 * variable is read from the environment, checked, defaulted and shown. One
 * constructor per kind of value, so a variable's default, range and help are
 * written once, and the loader, the `Config` type, the CLI flags, `switchboard
 * check` and the README table all come from its row.
 */

export type Env = Record<string, string | undefined>;

export class ConfigError extends Error {
  constructor(
    readonly variable: string,
    message: string,
  ) {
    super(`${variable}: ${message}`);
    this.name = 'ConfigError';
  }
}

/** What a variable's reader may know besides its own value: the mode, settled before any row is read. */
export interface ModeContext {
  production: boolean;
  /** No JWT key outside production: a random secret and `POST /dev/token`. */
  devMode: boolean;
}

/** One row of the table. */
export interface Variable<T> {
  /** The environment variable; `--kebab-case` of it is its CLI flag. */
  readonly name: string;
  /** One line, Markdown (the README's meaning column; links are dropped for `--help`). */
  readonly help: string;
  /** The default as an operator reads it (the README's default column); '—' for none. */
  readonly shown: string;
  /** Never printed or logged: `check` masks it. */
  readonly secret?: boolean;
  /** Its value from `env`; throws a `ConfigError` naming it when the value is bad. */
  read(env: Env, mode: ModeContext): T;
  /** How `check` prints a value ('' when unset). */
  show(value: T): string;
}

export const MASK = '****';

/** The trimmed value, or null when unset or blank. */
export function text(env: Env, name: string): string | null {
  const v = env[name];
  return v === undefined || v.trim() === '' ? null : v.trim();
}

/** Comma-separated, trimmed, empty items dropped. */
export function items(env: Env, name: string): string[] {
  const raw = text(env, name);
  return raw === null ? [] : raw.split(',').map((s) => s.trim()).filter(Boolean);
}

const showText = (v: string | null) => v ?? '';

/** A string with no default (null when unset), checked by `check` when set. */
export function textVar(name: string, help: string, check?: (value: string) => string | null): Variable<string | null> {
  return {
    name,
    help,
    shown: '—',
    read(env) {
      const value = text(env, name);
      const problem = value !== null && check ? check(value) : null;
      if (problem !== null) throw new ConfigError(name, problem);
      return value;
    },
    show: showText,
  };
}

/** A string with a default. */
export function textWithDefault(name: string, fallback: string, help: string): Variable<string> {
  return { name, help, shown: `\`${fallback}\``, read: (env) => text(env, name) ?? fallback, show: (v) => v };
}

/** A whole number in `[min, max]`. */
export function intVar(name: string, fallback: number, [min, max]: [number, number], help: string): Variable<number> {
  return { name, help, shown: `\`${fallback}\``, read: (env) => int(env, name, min, max) ?? fallback, show: String };
}

/** A whole number in `[min, max]`, or null when unset. */
export function optionalIntVar(name: string, [min, max]: [number, number], help: string): Variable<number | null> {
  return { name, help, shown: '—', read: (env) => int(env, name, min, max), show: (v) => (v === null ? '' : String(v)) };
}

function int(env: Env, name: string, min: number, max: number): number | null {
  const raw = text(env, name);
  if (raw === null) return null;
  if (!/^\d+$/.test(raw)) throw new ConfigError(name, `expected a whole number, got "${raw}"`);
  const n = Number(raw);
  if (n < min || n > max) throw new ConfigError(name, `expected ${min}…${max}, got ${n}`);
  return n;
}

/** One of `values`. */
export function oneOfVar<T extends string>(name: string, values: readonly T[], fallback: T, help: string): Variable<T> {
  return {
    name,
    help,
    shown: `\`${fallback}\``,
    read(env) {
      const raw = text(env, name);
      if (raw === null) return fallback;
      if (!(values as readonly string[]).includes(raw)) throw new ConfigError(name, `expected one of ${values.join(', ')}, got "${raw}"`);
      return raw as T;
    },
    show: (v) => v,
  };
}

/** `on`/`off` (and, where `extra` says so, other spellings of on) as a boolean. */
export function switchVar(name: string, fallback: boolean, help: string, extra: readonly string[] = []): Variable<boolean> {
  const choice = oneOfVar(name, ['on', 'off', ...extra], fallback ? 'on' : 'off', help);
  return { ...choice, read: (env, mode) => choice.read(env, mode) !== 'off', show: (v) => (v ? 'on' : 'off') };
}

/** A comma-separated list whose items each pass `check` (a message when one does not). */
export function listVar(name: string, help: string, check?: (item: string) => string | null): Variable<string[]> {
  return {
    name,
    help,
    shown: '—',
    read(env) {
      const values = items(env, name);
      for (const item of values) {
        const problem = check?.(item) ?? null;
        if (problem !== null) throw new ConfigError(name, problem);
      }
      return values;
    },
    show: (v) => v.join(','),
  };
}

/** A secret: never shown, only whether it is set (and how many keys it holds). */
export function showSecret(value: string | null): string {
  if (value === null) return '';
  const keys = value.split(',').length;
  return `${MASK} (${keys === 1 ? 'set' : `${keys} keys`})`;
}

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

/** `help` for a terminal: Markdown links and code marks dropped. */
export function plainHelp(help: string): string {
  return help.replace(/\[([^\]]+)\]\([^)]+\)/g, '$1').replaceAll('`', '');
}
