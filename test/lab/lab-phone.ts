/**
 * The test's side of a phone agent: spawns `phone-agent.ts` inside a phone's
 * network namespace, sends it commands, records every event it reports, and
 * waits for events with bounded timeouts (never a fixed sleep). It records how
 * the agent exited (wrtc may die of SIGSEGV in a finaliser at exit) without
 * failing on it: `exitInfo` says, and the lab reports it.
 */
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { ChildProcess } from 'node:child_process';
import type { AgentCommand, AgentEvent, AgentMessage, AgentPhoneOptions, StatsResult } from './agent-protocol.js';
import { exited, spawnIn, stopGroup } from './shell.js';

const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
const AGENT = fileURLToPath(new URL('./phone-agent.ts', import.meta.url));
/** Loading tsx, the SDK and wrtc takes about a second; a loaded machine, more. */
const START_TIMEOUT_MS = 30_000;
const REQUEST_TIMEOUT_MS = 15_000;
const EXIT_TIMEOUT_MS = 10_000;

export interface AgentExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

type Waiter = { accept: (e: AgentEvent) => boolean; resolve: (e: AgentEvent) => void };
type EventOf<K extends AgentEvent['event']> = Extract<AgentEvent, { event: K }>;

export class LabPhone {
  /** Every event the agent reported, in order. */
  readonly events: AgentEvent[] = [];
  /** How the agent exited, once it has. */
  exitInfo: AgentExit | null = null;
  private readonly pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  private readonly waiters = new Set<Waiter>();
  private nextId = 1;
  private stderrTail = '';
  private readonly exitedPromise: Promise<AgentExit>;

  private constructor(
    readonly name: string,
    private readonly child: ChildProcess,
  ) {
    createInterface({ input: child.stdout! }).on('line', (line) => this.take(line));
    child.stderr!.on('data', (chunk: Buffer) => (this.stderrTail = (this.stderrTail + chunk.toString()).slice(-4000)));
    this.exitedPromise = new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        this.exitInfo = { code, signal };
        for (const { reject } of this.pending.values()) reject(new Error(`${name}'s agent exited (${code ?? signal}): ${this.stderrTail.slice(-500)}`));
        this.pending.clear();
        resolve(this.exitInfo);
      });
    });
  }

  /** Starts an agent in namespace `ns`, living at most `lifetimeS`; resolves once it is ready for commands. */
  static async start(name: string, ns: string, lifetimeS: number): Promise<LabPhone> {
    const child = spawnIn(ns, [process.execPath, '--conditions=source', '--import', 'tsx', AGENT], lifetimeS, { cwd: REPO_ROOT });
    const phone = new LabPhone(name, child);
    try {
      await phone.waitFor('ready', () => true, { timeoutMs: START_TIMEOUT_MS });
    } catch (err) {
      await phone.close();
      throw err;
    }
    return phone;
  }

  /** Sends a command; resolves with its result, rejects with the agent's error or after `timeoutMs`. */
  request<T = unknown>(command: AgentCommand, timeoutMs = REQUEST_TIMEOUT_MS): Promise<T> {
    if (this.exitInfo) return Promise.reject(new Error(`${this.name}'s agent has exited`));
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`${this.name}: no reply to ${command.cmd} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(id, {
        resolve: (v) => (clearTimeout(timer), resolve(v as T)),
        reject: (e) => (clearTimeout(timer), reject(e)),
      });
      this.child.stdin!.write(JSON.stringify({ ...command, id }) + '\n');
    });
  }

  connect(url: string, token: string, audio: { send: number; expect: number }, options: AgentPhoneOptions = {}): Promise<unknown> {
    return this.request({ cmd: 'connect', url, token, audio, options });
  }

  call(userId: string, { video = false }: { video?: boolean } = {}): Promise<{ callId: string }> {
    return this.request({ cmd: 'call', userId, video });
  }

  accept(): Promise<unknown> {
    return this.request({ cmd: 'accept' });
  }

  hangup(): Promise<unknown> {
    return this.request({ cmd: 'hangup' });
  }

  stats(): Promise<StatsResult> {
    return this.request({ cmd: 'stats' });
  }

  /** `phone.preflight()` on this phone; the report as the SDK returns it. */
  preflight<T = unknown>(options: { timeoutMs?: number; mediaMs?: number } = {}): Promise<T> {
    return this.request<T>({ cmd: 'preflight', ...options }, (options.timeoutMs ?? 15_000) + 10_000);
  }

  /** The index of the next event: pass it as `since` to wait only for what happens from now on. */
  mark(): number {
    return this.events.length;
  }

  /** Resolves with the first event named `name` from index `since` on that `accept` agrees with, within `timeoutMs`. */
  waitFor<K extends AgentEvent['event']>(
    name: K,
    accept: (e: EventOf<K>) => boolean = () => true,
    { since = 0, timeoutMs = REQUEST_TIMEOUT_MS }: { since?: number; timeoutMs?: number } = {},
  ): Promise<EventOf<K>> {
    const matches = (e: AgentEvent): e is EventOf<K> => e.event === name && accept(e as EventOf<K>);
    const seen = this.events.slice(since).find(matches);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const waiter: Waiter = { accept: matches, resolve: (e) => (clear(), resolve(e as EventOf<K>)) };
      const timer = setTimeout(() => {
        clear();
        const recent = this.events.slice(-6).map((e) => JSON.stringify(e)).join('\n  ');
        reject(new Error(`${this.name}: no '${name}' event as wanted within ${timeoutMs} ms; last events:\n  ${recent}`));
      }, timeoutMs);
      const gone = () => (clear(), reject(new Error(`${this.name}'s agent exited while waiting for '${name}': ${this.stderrTail.slice(-500)}`)));
      const clear = () => {
        clearTimeout(timer);
        this.waiters.delete(waiter);
        this.child.off('exit', gone);
      };
      this.waiters.add(waiter);
      this.child.once('exit', gone);
    });
  }

  /** Waits for the call to reach `state` (from `since` on). */
  callState(state: string, options: { since?: number; timeoutMs?: number } = {}): Promise<EventOf<'call'>> {
    return this.waitFor('call', (e) => e.state === state, options);
  }

  /** Waits for the expected tone to be heard (`true`) or to stop (`false`), from `since` on. */
  audio(present: boolean, options: { since?: number; timeoutMs?: number } = {}): Promise<EventOf<'audio'>> {
    return this.waitFor('audio', (e) => e.present === present, options);
  }

  /** Waits for the peer's video frames to come (`true`) or to stop (`false`), from `since` on. */
  video(present: boolean, options: { since?: number; timeoutMs?: number } = {}): Promise<EventOf<'video'>> {
    return this.waitFor('video', (e) => e.present === present, options);
  }

  /** Waits until at least `frames` of the peer's video have come in all (from `since` on). */
  videoFrames(frames: number, options: { since?: number; timeoutMs?: number } = {}): Promise<EventOf<'video-frames'>> {
    return this.waitFor('video-frames', (e) => e.frames >= frames, options);
  }

  /** The events named `name` from `since` on. */
  eventsOf<K extends AgentEvent['event']>(name: K, since = 0): EventOf<K>[] {
    return this.events.slice(since).filter((e): e is EventOf<K> => e.event === name);
  }

  /**
   * The longest stretch, within [from, to] (epoch ms), in which the expected
   * tone was not heard: from an `audio` absent event to the next present one
   * (or `to`). Audio heard at `from` is assumed when the last change before it said so.
   */
  longestSilenceMs(from: number, to: number): number {
    const changes = this.eventsOf('audio');
    let heard = changes.filter((e) => e.t <= from).at(-1)?.present ?? false;
    let since = from;
    let longest = 0;
    for (const change of changes.filter((e) => e.t > from && e.t <= to)) {
      if (heard === change.present) continue;
      if (!change.present) since = change.t;
      else longest = Math.max(longest, change.t - since);
      heard = change.present;
    }
    return heard ? longest : Math.max(longest, to - since);
  }

  /** Asks the agent to let go of its phone and exit; kills its process group if it does not. Resolves with how it exited. */
  async close(): Promise<AgentExit> {
    if (!this.exitInfo) {
      await this.request({ cmd: 'exit' }, EXIT_TIMEOUT_MS).catch(() => undefined);
      if (!(await exited(this.child, EXIT_TIMEOUT_MS))) await stopGroup(this.child);
    }
    return this.exitedPromise;
  }

  /** The PID of the agent's process group (its `timeout` leader), for the lab's teardown. */
  get pid(): number | undefined {
    return this.child.pid;
  }

  private take(line: string): void {
    let message: AgentMessage;
    try {
      message = JSON.parse(line) as AgentMessage;
    } catch {
      return; // not ours: a library writing to stdout
    }
    if ('reply' in message) {
      const pending = this.pending.get(message.reply);
      this.pending.delete(message.reply);
      if (message.ok) pending?.resolve(message.result);
      else pending?.reject(new Error(`${this.name}: ${message.error}`));
      return;
    }
    this.events.push(message);
    for (const waiter of [...this.waiters]) if (waiter.accept(message)) waiter.resolve(message);
  }
}
