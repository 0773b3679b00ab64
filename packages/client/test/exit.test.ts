/**
 * A Node process that used the SDK with @roamhq/wrtc exits cleanly when it
 * does what the README says: `phone.disconnect()`, then `process.exit()`.
 * (Left to end by itself, such a process dies with SIGSEGV in wrtc's
 * RTCAudioSource finaliser during Node's environment teardown — the app's
 * audio source, not anything of the SDK's.)
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { after, before, describe, test } from 'node:test';
import type { SwitchboardServer } from '../../server/src/index.js';
import { startTestServer } from '../../../test/support/server.js';

const CHILD = new URL('./exit-child.ts', import.meta.url).pathname;

describe('a Node process on the SDK', () => {
  let server: SwitchboardServer;
  before(async () => {
    server = await startTestServer();
  });
  after(async () => {
    await server.close();
  });

  test('makes a call, disconnects and exits with code 0, no signal (three runs)', async () => {
    for (let run = 0; run < 3; run++) {
      const child = spawn(process.execPath, ['--conditions=source', '--import', 'tsx', CHILD], {
        env: { ...process.env, SERVER_URL: server.url },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let output = '';
      child.stdout.on('data', (d: Buffer) => (output += d.toString()));
      child.stderr.on('data', (d: Buffer) => (output += d.toString()));
      const killer = setTimeout(() => child.kill('SIGKILL'), 60_000);
      const [code, signal] = (await once(child, 'exit')) as [number | null, NodeJS.Signals | null];
      clearTimeout(killer);
      assert.deepEqual({ code, signal }, { code: 0, signal: null }, `run ${run}: ${output}`);
      assert.match(output, /^done$/m);
    }
  });
});
