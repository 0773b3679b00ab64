/**
 * The one logger. JSON lines on stdout; human-readable when dev mode writes to
 * a terminal. Tokens never reach it: the redact paths below are a second line
 * of defence for code that would log a payload whole.
 */
import { pino, type Logger } from 'pino';
import pretty from 'pino-pretty';
import type { Config } from './config.js';

export type { Logger };

/** Fields that never reach a log line, wherever a careless call puts them. */
const SECRET_FIELDS = ['token', 'authorization', 'credential', 'password', 'secret', 'jwtSecret', 'turnSecret', 'webhookSecret'];
const REDACT_PATHS = SECRET_FIELDS.flatMap((f) => [f, `*.${f}`]);

export function createLogger(config: Pick<Config, 'logLevel' | 'devMode' | 'nodeId'>): Logger {
  const options = {
    level: config.logLevel,
    base: { node: config.nodeId },
    redact: { paths: REDACT_PATHS, censor: '[redacted]' },
  };
  if (config.devMode && process.stdout.isTTY) {
    return pino(options, pretty({ colorize: true, translateTime: 'HH:MM:ss.l', ignore: 'pid,hostname' }));
  }
  return pino(options);
}
