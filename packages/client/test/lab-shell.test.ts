/**
 * The network lab's command runner (test/lab/shell.ts), on its own: the lab's
 * set-up and teardown feed rules to commands on stdin, and a command that
 * exits without reading them (refused, or done early) must fail or pass by its
 * exit status, never crash the test file with an unhandled EPIPE (which once
 * failed a whole lab file after all of its tests had passed).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CommandError, run } from '../../../test/lab/shell.js';

/** Closes its stdin at once, then exits with `code` after a moment: the input written to it meets a closed pipe. */
const deaf = (code: number) => ['sh', '-c', `exec 0<&-; sleep 0.1; exit ${code}`];
const INPUT = 'x'.repeat(1 << 20);

test('a command that does not read its input: run() answers by its exit status, 8 tries each way', async () => {
  for (let i = 0; i < 8; i++) {
    assert.equal(await run(deaf(0), INPUT), '');
    await assert.rejects(run(deaf(3), INPUT), (err: unknown) => err instanceof CommandError && /exit 3/.test(err.message));
  }
});

test('a command that reads its input gets all of it', async () => {
  assert.equal(await run(['wc', '-c'], INPUT).then((out) => Number(out.trim())), INPUT.length);
});
