/**
 * One fail-fast Redis connection: commands reject at once while Redis is away
 * (no offline queue, a per-command timeout), so callers answer `internal`
 * instead of hanging, and ioredis reconnects by itself. The store's scripts
 * run here (EVALSHA, loading a script on first use).
 */
import type { RedisOptions } from 'ioredis';
import type { LuaScript, ScriptCall } from './redis-keys.js';
import { closeRedis, openRedis, type RedisClient, type RedisTarget } from './redis-target.js';

export const DEFAULT_COMMAND_TIMEOUT_MS = 2000;

/** ioredis options under which a command rejects rather than waits while Redis is down. */
export function failFastOptions(commandTimeoutMs = DEFAULT_COMMAND_TIMEOUT_MS): RedisOptions {
  return {
    // Nothing queues while disconnected: commands reject at once (see `whenReady` for start-up).
    enableOfflineQueue: false,
    // Commands in flight when the connection drops reject at once instead of being resent
    // after the reconnect, when their caller has long answered `internal` (a late commit would run unseen).
    autoResendUnfulfilledCommands: false,
    maxRetriesPerRequest: 0,
    commandTimeout: commandTimeoutMs,
    connectTimeout: Math.max(commandTimeoutMs, 5000),
    // No auto-pipelining: openRedis's connections write the commands of one turn in one write without it (redis-coalesce.ts).
    // Never give up reconnecting; back off to one attempt a second.
    retryStrategy: (times) => Math.min(50 * times, 1000),
  };
}

export interface RedisConnectionOptions {
  /** Opens (and closes) its own connection to this URL. */
  url?: string;
  /** Or to this target (one Redis, or a master behind Sentinel). */
  target?: RedisTarget;
  /** Or uses a connection owned by the caller (not closed by `close()`); give it the options of `failFastOptions`. */
  client?: RedisClient;
  /** A command with no answer within this long rejects. @default 2000 */
  commandTimeoutMs?: number;
  /** Called with connection errors (ioredis emits them while it reconnects). @default ignore them */
  onError?: (err: Error) => void;
}

export class RedisConnection {
  readonly client: RedisClient;
  private readonly ownsClient: boolean;
  private readonly commandTimeoutMs: number;
  private everReady = false;
  /** The wait for the first connection, shared by every command issued before it. */
  private firstReady: Promise<void> | null = null;
  private readonly onReady = () => {
    this.everReady = true;
  };

  constructor(options: RedisConnectionOptions) {
    this.commandTimeoutMs = options.commandTimeoutMs ?? DEFAULT_COMMAND_TIMEOUT_MS;
    if (options.client) {
      this.client = options.client;
      this.ownsClient = false;
    } else {
      const target: RedisTarget | undefined = options.target ?? (options.url ? { kind: 'single', url: options.url } : undefined);
      if (!target) throw new Error('RedisStore needs a url, a target or a client');
      this.client = openRedis(target, failFastOptions(this.commandTimeoutMs));
      this.ownsClient = true;
      this.client.on('error', options.onError ?? (() => undefined));
    }
    if (this.client.status === 'ready') this.everReady = true;
    this.client.on('ready', this.onReady);
  }

  /** A Redis Cluster (commands are routed by key; one script's keys share a slot). */
  get cluster(): boolean {
    return this.client.isCluster;
  }

  /** EVALSHA, loading the script on first use (EVAL caches it for the next EVALSHA). */
  async run(script: LuaScript, { keys, args }: ScriptCall): Promise<unknown> {
    await this.ready();
    try {
      return await this.client.evalsha(script.sha, keys.length, ...keys, ...args);
    } catch (err) {
      if (!(err instanceof Error) || !err.message.startsWith('NOSCRIPT')) throw err;
      return this.client.eval(script.lua, keys.length, ...keys, ...args);
    }
  }

  /**
   * Right after start-up the connection is still opening: wait for it, for at
   * most one command timeout. Once it has been up, a lost connection fails
   * every command at once until ioredis has reconnected by itself.
   */
  ready(): Promise<void> {
    const { status } = this.client;
    if (status === 'ready') return Promise.resolve();
    if (status === 'end') return Promise.reject(new Error('the Redis connection is closed'));
    if (this.everReady) return Promise.reject(new Error(`Redis is unavailable (${status})`));
    if (status === 'wait') void this.client.connect().catch(() => undefined);
    // Every command issued before the first connection waits on the same promise (one listener, not one each).
    this.firstReady ??= this.waitFirstReady().finally(() => (this.firstReady = null));
    return this.firstReady;
  }

  private waitFirstReady(): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const done = (err?: Error) => {
        clearTimeout(timer);
        this.client.off('ready', onReady);
        this.client.off('end', onEnd);
        if (err) reject(err);
        else resolve();
      };
      const onReady = () => done();
      const onEnd = () => done(new Error('the Redis connection is closed'));
      const timer = setTimeout(() => done(new Error(`Redis did not answer within ${this.commandTimeoutMs} ms`)), this.commandTimeoutMs);
      timer.unref();
      this.client.once('ready', onReady);
      this.client.once('end', onEnd);
    });
  }

  async close(): Promise<void> {
    this.client.off('ready', this.onReady);
    if (this.ownsClient) await closeRedis(this.client);
  }
}
