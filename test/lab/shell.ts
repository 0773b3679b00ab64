/**
 * Commands and processes of the network lab, every one bounded: a command
 * runs under coreutils `timeout` and fails with its stderr; a long-lived
 * process (coturn, the server, a phone agent) runs under `timeout` too, as
 * the leader of its own process group, so that killing the group by its PID
 * ends it and everything it started, and so that a process left behind by a
 * test process that was SIGKILLed still dies when its lifetime runs out.
 */
import { execFileSync, spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { readFileSync } from 'node:fs';

/** How long one configuration command (ip, nft, sysctl) may take. */
const COMMAND_TIMEOUT_S = 10;

export class CommandError extends Error {
  constructor(
    readonly argv: readonly string[],
    readonly code: number | null,
    readonly stderr: string,
  ) {
    super(`\`${argv.join(' ')}\` failed (${code === 124 ? 'timed out' : `exit ${code}`}): ${stderr.trim() || '(no stderr)'}`);
    this.name = 'CommandError';
  }
}

/** Runs `argv` under `timeout`, with `input` on stdin; resolves with stdout, rejects with a `CommandError`. */
export function run(argv: readonly string[], input?: string, timeoutS = COMMAND_TIMEOUT_S): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn('timeout', ['-k', '2', String(timeoutS), ...argv], { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('error', (err) => reject(new CommandError(argv, null, err.message)));
    child.on('close', (code) => (code === 0 ? resolve(stdout) : reject(new CommandError(argv, code, stderr))));
    tolerateClosedStdin(child).stdin.end(input ?? '');
  });
}

/**
 * A child that exits or stops reading before our write to its stdin closes the
 * pipe, and the write fails with EPIPE. How the child went is told by its exit
 * (status, `exit` listeners); left unhandled, the write error would crash the
 * test file instead. Every child of the lab's goes through this.
 */
function tolerateClosedStdin<T extends ChildProcess>(child: T): T {
  child.stdin?.on('error', () => undefined);
  return child;
}

/** `run` inside network namespace `ns`. */
export function runIn(ns: string, argv: readonly string[], input?: string): Promise<string> {
  return run(['ip', 'netns', 'exec', ns, ...argv], input);
}

/** The synchronous form, for teardown in an `exit` handler; never throws. */
export function runSync(argv: readonly string[], timeoutS = 5): boolean {
  try {
    execFileSync('timeout', ['-k', '1', String(timeoutS), ...argv], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** Variables a child inherits; nothing else does (not the test runner's, nor a REDIS_URL meant for other tests). */
const INHERITED = ['PATH', 'HOME', 'TMPDIR', 'LANG', 'TZ'];

/**
 * Starts `argv` inside `ns` for at most `lifetimeS`, as a process group of
 * its own (led by `timeout`, whose PID is the child's). The environment is
 * `env` and the few `INHERITED` variables of this process.
 */
export function spawnIn(ns: string, argv: readonly string[], lifetimeS: number, options: SpawnOptions & { env?: NodeJS.ProcessEnv } = {}): ChildProcess {
  const env: NodeJS.ProcessEnv = {};
  for (const name of INHERITED) if (process.env[name] !== undefined) env[name] = process.env[name];
  Object.assign(env, options.env);
  const child = spawn('timeout', ['-k', '3', String(lifetimeS), 'ip', 'netns', 'exec', ns, ...argv], {
    stdio: ['pipe', 'pipe', 'pipe'],
    ...options,
    env,
    // coreutils timeout makes itself a group leader anyway; detached says so to Node as well.
    detached: true,
  });
  return tolerateClosedStdin(child);
}

/** Sends `signal` to the process group a `spawnIn` child leads; false when it is gone already. */
export function killGroup(pid: number | undefined, signal: NodeJS.Signals): boolean {
  if (pid === undefined) return false;
  try {
    process.kill(-pid, signal);
    return true;
  } catch {
    return false;
  }
}

/** Resolves once `child` has exited (at once if it has), or after `timeoutMs`; true when it exited. */
export function exited(child: ChildProcess, timeoutMs: number): Promise<boolean> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      child.off('exit', done);
      resolve(false);
    }, timeoutMs);
    const done = () => {
      clearTimeout(timer);
      resolve(true);
    };
    child.once('exit', done);
  });
}

/** Asks a `spawnIn` child to stop (SIGTERM to its group), then SIGKILLs the group if it has not exited within `graceMs`. */
export async function stopGroup(child: ChildProcess, graceMs = 3000): Promise<void> {
  if (!killGroup(child.pid, 'SIGTERM')) return;
  if (await exited(child, graceMs)) return;
  killGroup(child.pid, 'SIGKILL');
  await exited(child, 1000);
}

/** True when a process with this PID exists and is not a zombie (a SIGKILLed process its parent has not reaped yet). */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
  try {
    // /proc/<pid>/stat: "pid (comm) state …"; comm may hold spaces and parentheses.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}
