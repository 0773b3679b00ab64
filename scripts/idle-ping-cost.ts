/**
 * What the server's heartbeat costs an idle node: N authenticated sessions
 * that do nothing, and the server's CPU over a quiet window, for each ping
 * setting in turn (`PINGS`, `interval/timeout` pairs in ms). Reported as CPU
 * ms per second, and as % of a core per 10,000 sessions.
 *
 *   node --conditions=source --import tsx scripts/idle-ping-cost.ts
 *   SESSIONS=5000 WINDOW_S=30 PINGS=25000/20000,10000/10000 node --conditions=source --import tsx scripts/idle-ping-cost.ts
 */
import { closeAll, openMany, openSpec } from '../bench/src/clients.js';
import { sleep } from '../bench/src/measure.js';
import { pinSelf, startProcess } from '../bench/src/processes.js';

const sessions = Number(process.env.SESSIONS ?? 5000);
const windowS = Number(process.env.WINDOW_S ?? 30);
const pings = (process.env.PINGS ?? '25000/20000,10000/10000').split(',').map((p) => p.split('/').map(Number) as [number, number]);

pinSelf(0);
for (const [interval, timeout] of pings) {
  const server = await startProcess({
    label: `ping-${interval}`,
    kind: 'switchboard',
    cpu: 1,
    env: { PING_INTERVAL_MS: String(interval), PING_TIMEOUT_MS: String(timeout), MAX_UNAUTHENTICATED_PER_ADDRESS: '100000' },
  });
  try {
    const sockets = await openMany(sessions, 200, (i) => openSpec(server.url, 'switchboard', { userId: `u${i}`, tenant: `i${i}` }));
    // Let the sign-ins' work and a first round of pings pass.
    await sleep(Math.max(3000, interval + 1000));
    const before = server.cpuMs();
    await sleep(windowS * 1000);
    const used = server.cpuMs() - before;
    const perSecond = used / windowS;
    console.log(
      `ping ${interval}/${timeout} ms, ${sessions} idle sessions: ${perSecond.toFixed(1)} ms CPU per second` +
        ` = ${((perSecond / 10) * (10_000 / sessions)).toFixed(2)} % of a core per 10,000 sessions`,
    );
    closeAll(sockets);
  } finally {
    await server.stop();
  }
}
