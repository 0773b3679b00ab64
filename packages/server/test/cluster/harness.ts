/**
 * Multi-process harness: real server processes on free ports sharing a real
 * Redis, each test with a fresh key prefix; a test-owned `redis-server` on a
 * free port when a test needs to stop or restart Redis (both from
 * test/support/redis.ts, the repository's one Redis support).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { TEST_SECRET } from '../helpers.js';

const MAIN = new URL('../../src/main.ts', import.meta.url).pathname;

export { freePort } from '../../../../test/support/ports.js';
export { dropPrefix, freshPrefix, OwnedRedis, sharedRedis } from '../../../../test/support/redis.js';

export interface NodeProcess {
  readonly id: string;
  readonly url: string;
  readonly child: ChildProcess;
  /** Every log line the node printed, parsed. */
  readonly logs: Record<string, unknown>[];
  kill(signal?: NodeJS.Signals): Promise<void>;
}

/** Starts one server process (`src/main.ts`) and waits until it listens. */
export async function startNode(env: Record<string, string>): Promise<NodeProcess> {
  const id = env.NODE_ID ?? `node-${randomUUID().slice(0, 6)}`;
  const child = spawn(process.execPath, ['--conditions=source', '--import', 'tsx', MAIN], {
    env: {
      PATH: process.env.PATH ?? '',
      HOST: '127.0.0.1',
      PORT: '0',
      JWT_SECRET: TEST_SECRET,
      LOG_LEVEL: 'info',
      NODE_ID: id,
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const logs: Record<string, unknown>[] = [];
  const lines = createInterface({ input: child.stdout! });
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`node ${id} did not start: ${stderr}`)), 20_000);
    child.once('exit', (code) => reject(new Error(`node ${id} exited with ${code}: ${stderr}`)));
    lines.on('line', (line) => {
      let entry: Record<string, unknown>;
      try {
        entry = JSON.parse(line) as Record<string, unknown>;
      } catch {
        entry = { msg: line };
      }
      logs.push(entry);
      if (entry.msg === 'switchboard listening') {
        clearTimeout(timer);
        resolve(entry.port as number);
      }
    });
  });
  return {
    id,
    url: `http://127.0.0.1:${port}`,
    child,
    logs,
    async kill(signal: NodeJS.Signals = 'SIGTERM') {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = once(child, 'exit');
      child.kill(signal);
      await exited;
    },
  };
}
