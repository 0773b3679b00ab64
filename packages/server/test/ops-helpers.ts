/**
 * Helpers for the operating tests: the CLI run in a real shell, a local
 * webhook receiver that checks every signature, a log sink, and a bounded
 * wait on a condition.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createInterface } from 'node:readline';
import { Writable } from 'node:stream';
import { pino, type Logger } from 'pino';
import type { WebhookEvent } from '../src/webhooks.js';

export const ROOT = new URL('../../../', import.meta.url).pathname;
export const CLI = new URL('../src/cli.ts', import.meta.url).pathname;

export { pollUntil as waitFor } from '../../../test/support/wait.js';

function cliEnv(env: Record<string, string>): NodeJS.ProcessEnv {
  return { PATH: process.env.PATH ?? '', ...env };
}

/** Runs `switchboard <args>` to completion. */
export async function runCli(
  args: string[],
  env: Record<string, string> = {},
): Promise<{ code: number | null; stdout: string; stderr: string; ms: number }> {
  const started = Date.now();
  const child = spawn(process.execPath, ['--conditions=source', '--import', 'tsx', CLI, ...args], {
    cwd: ROOT,
    env: cliEnv(env),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
  const [code] = (await once(child, 'close')) as [number | null];
  clearTimeout(timer);
  return { code, stdout, stderr, ms: Date.now() - started };
}

export interface ServeProcess {
  child: ChildProcess;
  url: string;
  logs: Record<string, unknown>[];
  stderr(): string;
  /** Sends `signal` and resolves with the exit code. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/** Starts `switchboard serve <args>` and waits until it listens. */
export async function startServe(args: string[], env: Record<string, string>): Promise<ServeProcess> {
  const child = spawn(process.execPath, ['--conditions=source', '--import', 'tsx', CLI, 'serve', ...args], {
    cwd: ROOT,
    env: cliEnv(env),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const logs: Record<string, unknown>[] = [];
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`serve did not start: ${stderr}`)), 20_000);
    child.once('exit', (code) => reject(new Error(`serve exited with ${code}: ${stderr}`)));
    createInterface({ input: child.stdout! }).on('line', (line) => {
      const entry = JSON.parse(line) as Record<string, unknown>;
      logs.push(entry);
      if (entry.msg === 'switchboard listening') {
        clearTimeout(timer);
        resolve(entry.port as number);
      }
    });
  });
  return {
    child,
    url: `http://127.0.0.1:${port}`,
    logs,
    stderr: () => stderr,
    async stop(signal: NodeJS.Signals = 'SIGTERM') {
      if (child.exitCode !== null) return child.exitCode;
      const exited = once(child, 'exit');
      child.kill(signal);
      const [code] = (await exited) as [number | null];
      return code;
    },
  };
}

/** A pino logger writing JSON lines into `lines`. */
export function captureLogger(level = 'info', base: Record<string, unknown> = {}): { logger: Logger; lines: string[] } {
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      lines.push(...chunk.toString().split('\n').filter(Boolean));
      done();
    },
  });
  return { logger: pino({ level, base }, sink), lines };
}

export interface Delivery {
  event: WebhookEvent;
  raw: string;
  header: string | undefined;
  authorization: string | undefined;
  /** The signature header checked independently of the server's code. */
  signatureValid: boolean;
  status: number;
}

/**
 * A local webhook receiver. `respond` picks the status of each request (by its
 * 1-based number) and may hold the answer until a promise resolves.
 */
export class Receiver {
  readonly deliveries: Delivery[] = [];
  requests = 0;
  private waiters: { match: (d: Delivery) => boolean; resolve: () => void }[] = [];

  private constructor(
    private readonly server: Server,
    readonly secret: string,
    readonly port: number,
    private readonly respond: (n: number, event: WebhookEvent) => number | Promise<number>,
  ) {}

  get url(): string {
    return `http://127.0.0.1:${this.port}/hooks/switchboard`;
  }

  static async start(
    secret: string,
    options: { port?: number; respond?: (n: number, event: WebhookEvent) => number | Promise<number> } = {},
  ): Promise<Receiver> {
    let receiver!: Receiver;
    const server = createServer((req, res) => void receiver.handle(req, res));
    server.listen(options.port ?? 0, '127.0.0.1');
    await once(server, 'listening');
    const { port } = server.address() as { port: number };
    receiver = new Receiver(server, secret, port, options.respond ?? (() => 200));
    return receiver;
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const raw = Buffer.concat(chunks).toString('utf8');
    const header = req.headers['x-switchboard-signature'] as string | undefined;
    const event = JSON.parse(raw) as WebhookEvent;
    const status = await this.respond(++this.requests, event);
    const delivery: Delivery = { event, raw, header, authorization: req.headers.authorization, signatureValid: checkSignature(this.secret, header, raw), status };
    this.deliveries.push(delivery);
    res.writeHead(status, { 'content-type': 'text/plain' }).end(status === 200 ? 'ok' : 'nope');
    this.waiters = this.waiters.filter((w) => (w.match(delivery) ? (w.resolve(), false) : true));
  }

  /** Events acknowledged with 200, in the order they were answered. */
  get accepted(): WebhookEvent[] {
    return this.deliveries.filter((d) => d.status === 200).map((d) => d.event);
  }

  /** Waits for an accepted event matching `match`. */
  next(what: string, match: (e: WebhookEvent) => boolean, timeoutMs = 5000): Promise<WebhookEvent> {
    const found = this.accepted.find(match);
    if (found) return Promise.resolve(found);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no webhook ${what} within ${timeoutMs} ms; got ${this.describe()}`)), timeoutMs);
      this.waiters.push({
        match: (d) => d.status === 200 && match(d.event),
        resolve: () => {
          clearTimeout(timer);
          resolve(this.accepted.find(match)!);
        },
      });
    });
  }

  describe(): string {
    return JSON.stringify(this.deliveries.map((d) => [d.event.type, d.event.callId.slice(0, 8), d.status]));
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    this.server.close();
    await once(this.server, 'close');
  }
}

/** `t=<unix seconds>,v1=<hex HMAC-SHA256(secret, t + "." + body)>`, within a minute of now. */
export function checkSignature(secret: string, header: string | undefined, raw: string): boolean {
  const match = /^t=(\d+),v1=([0-9a-f]{64})$/.exec(header ?? '');
  if (!match) return false;
  const [, t, v1] = match;
  const expected = createHmac('sha256', secret).update(`${t}.${raw}`).digest('hex');
  return v1 === expected && Math.abs(Date.now() / 1000 - Number(t)) < 60;
}
