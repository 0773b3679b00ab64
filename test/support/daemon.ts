/**
 * A daemon a test owns (coturn, PulseAudio): spawned, its output kept in
 * memory up to a bound, stopped by its PID (SIGTERM, then SIGKILL after a
 * grace), and its temporary folder removed with it. Whoever waits for it to
 * be ready hears every new line of output and its exit (`onChange`), so a
 * wait is on events, never on a sleep.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { rmSync } from 'node:fs';

export interface DaemonOptions {
  command: string;
  args: string[];
  env?: NodeJS.ProcessEnv;
  /** Its temporary folder: removed when it stops, or when it cannot start. */
  dir: string;
  /** What to install when the command is missing, for the error. */
  install: string;
  /** Output kept at most, characters. @default 2_000_000 */
  logLimit?: number;
}

export interface Daemon {
  readonly pid: number;
  /** How it exited, once it has. */
  exited(): { code: number | null; signal: NodeJS.Signals | null } | undefined;
  /** Resolves when it exits. */
  readonly exit: Promise<void>;
  /** Its stdout and stderr so far. */
  log(): string;
  /** Calls `listener` on each chunk of output and at its exit; returns how to stop listening. */
  onChange(listener: () => void): () => void;
  /** SIGTERM, SIGKILL after 3 s, then its folder removed. Safe to call twice. */
  stop(): Promise<void>;
}

export async function startDaemon(options: DaemonOptions): Promise<Daemon> {
  const { command, args, env, dir, install } = options;
  const limit = options.logLimit ?? 2_000_000;
  const child: ChildProcess = spawn(command, args, { ...(env ? { env } : {}), stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  const listeners = new Set<() => void>();
  const changed = () => listeners.forEach((listener) => listener());
  const append = (chunk: string) => {
    if (log.length < limit) log += chunk;
    changed();
  };
  child.stdout!.setEncoding('utf8').on('data', append);
  child.stderr!.setEncoding('utf8').on('data', append);
  let exited: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  const exit = new Promise<void>((resolve) => {
    child.once('exit', (code, signal) => {
      exited = { code, signal };
      changed();
      resolve();
    });
  });
  const spawnError = await new Promise<Error | undefined>((resolve) => {
    child.once('spawn', () => resolve(undefined));
    child.once('error', (err) => resolve(err));
  });
  if (spawnError || child.pid === undefined) {
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`could not start ${command}: ${spawnError?.message ?? 'no pid'}; install Debian's ${install}`);
  }
  const pid = child.pid;

  let stopped = false;
  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    if (!exited) {
      process.kill(pid, 'SIGTERM');
      const grace = setTimeout(() => {
        if (!exited) process.kill(pid, 'SIGKILL');
      }, 3000);
      await exit;
      clearTimeout(grace);
    }
    rmSync(dir, { recursive: true, force: true });
  };

  return {
    pid,
    exited: () => exited,
    exit,
    log: () => log,
    onChange(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    stop,
  };
}
