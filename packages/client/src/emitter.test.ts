/** The typed emitter under Phone and Call: order, once, off, and a throwing listener that stops nobody. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { TypedEmitter } from './index.js';

type Events = { ping: (n: number) => void; done: () => void };
class Probe extends TypedEmitter<Events> {
  fire<E extends keyof Events>(event: E, ...args: Parameters<Events[E]>): boolean {
    return this.emit(event, ...args);
  }
}

describe('TypedEmitter', () => {
  test('calls listeners in order; once fires once; off removes', () => {
    const probe = new Probe();
    const seen: string[] = [];
    const a = (n: number) => seen.push(`a${n}`);
    probe.on('ping', a);
    probe.once('ping', (n) => seen.push(`once${n}`));
    probe.on('ping', (n) => seen.push(`b${n}`));
    assert.equal(probe.fire('ping', 1), true);
    probe.off('ping', a);
    probe.fire('ping', 2);
    assert.deepEqual(seen, ['a1', 'once1', 'b1', 'b2']);
    assert.equal(probe.listenerCount('ping'), 1);
    assert.equal(probe.fire('done'), false, 'no listener, nothing called');
    probe.removeAllListeners();
    assert.equal(probe.listenerCount('ping'), 0);
  });

  test('a listener that throws does not stop the others; its error surfaces as uncaught', async () => {
    const probe = new Probe();
    const seen: number[] = [];
    const boom = new Error('listener bug');
    const uncaught = new Promise<unknown>((resolve) => {
      const listeners = process.listeners('uncaughtException');
      process.removeAllListeners('uncaughtException');
      process.once('uncaughtException', (err) => {
        for (const l of listeners) process.on('uncaughtException', l);
        resolve(err);
      });
    });
    probe.on('ping', () => {
      throw boom;
    });
    probe.on('ping', (n) => seen.push(n));
    probe.fire('ping', 7);
    assert.deepEqual(seen, [7]);
    assert.equal(await uncaught, boom);
  });
});
