/**
 * A real Switchboard server for any package's tests: on a free port on
 * loopback, with a test secret, silent unless TEST_LOG_LEVEL says otherwise;
 * and tokens signed with that secret.
 */
import { loadConfig, mintToken, startServer, type StartOptions, type SwitchboardServer } from '../../packages/server/src/index.js';
import type { MintOptions } from '../../packages/server/src/auth/tokens.js';

export const TEST_SECRET = 'test-secret-0123456789-abcdefghijklmnop';
/** How long a test waits for an event before it fails. */
export const WAIT_MS = 5000;

export async function startTestServer(
  env: Record<string, string> = {},
  options: Pick<StartOptions, 'store' | 'hooks'> = {},
): Promise<SwitchboardServer> {
  const config = loadConfig({
    PORT: '0',
    HOST: '127.0.0.1',
    JWT_SECRET: TEST_SECRET,
    LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'silent',
    ...env,
  });
  return startServer(config, options);
}

/** A token for `userId` (named after it, capitalised), signed with the test secret. */
export function tokenFor(userId: string, options: Omit<MintOptions, 'userId'> = {}, secret = TEST_SECRET): Promise<string> {
  return mintToken(secret, { name: userId[0]!.toUpperCase() + userId.slice(1), ...options, userId });
}
