/** `npm start`: load the configuration, start one node, stop cleanly on SIGTERM/SIGINT. */
import { ConfigError, loadConfig, type Config } from './config.js';
import { createLogger } from './logger.js';
import { startServer } from './server.js';

let config: Config;
try {
  config = loadConfig();
} catch (err) {
  if (err instanceof ConfigError) {
    process.stderr.write(`switchboard: configuration error: ${err.message}\n`);
    process.exit(78);
  }
  throw err;
}

const logger = createLogger(config);
if (config.devMode) {
  logger.warn(
    '*** DEV MODE: no JWT_SECRET or JWT_PUBLIC_KEY set. Using a random secret and serving POST /dev/token, which hands a token to anyone. Never run this in production. ***',
  );
}
// A dependency that rejects a promise nobody awaits (e.g. a publish during a Redis outage)
// must not take the node down: log it and keep serving.
process.on('unhandledRejection', (reason) => logger.error({ err: reason }, 'unhandled rejection'));
if (config.production && config.corsOrigins.length === 0) {
  logger.warn('CORS_ORIGINS is not set: browsers on any site may open sockets here (cross-site WebSocket hijacking). Set it to your app origins.');
}
const server = await startServer(config, { logger });

let stopping = false;
const stop = (signal: string) => {
  if (stopping) return;
  stopping = true;
  logger.info({ signal }, 'shutting down');
  const force = setTimeout(() => process.exit(1), 10_000);
  force.unref();
  server.close().then(
    () => process.exit(0),
    (err: unknown) => {
      logger.error({ err }, 'shutdown failed');
      process.exit(1);
    },
  );
};
process.on('SIGTERM', () => stop('SIGTERM'));
process.on('SIGINT', () => stop('SIGINT'));
