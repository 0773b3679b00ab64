/**
 * Profiles the server over whole calls: starts one server process (memory
 * mode, or Redis mode with REDIS_URL set) under `--cpu-prof`, drives
 * `--pairs` caller/callee pairs for `--seconds`, stops it, and prints the
 * hottest functions of the profile by self time.
 * With REDIS_URL and NODES=2, two nodes share Redis (callers on one, callees
 * on the other, as the bench's Redis mode) and their profiles are summed;
 * with PIN=1 the callers' node runs alone on CPU 1 and only its profile is read;
 * with PIN=bench every node runs on CPU 1 and the generator on CPU 0, as in `npm run bench`.
 * WARMUP=s drives calls for that long before measuring (default 0).
 * Usage: node --conditions=source --import tsx scripts/profile-calls.ts [seconds=8] [pairs=16] [bare]
 */
import { readdirSync, readFileSync, rmSync, mkdirSync } from 'node:fs';
import { newCounters } from '../bench/src/call.js';
import { envList, pinSelf, startProcess, type ServerKind } from '../bench/src/processes.js';
import { closedLoop } from '../bench/src/saturation.js';
import { closePairs, connectPairs, makeTarget } from '../bench/src/targets.js';
import { dropPrefix } from '../test/support/redis.js';

const seconds = Number(process.argv[2] ?? 8);
const pairCount = Number(process.argv[3] ?? 16);
const kind: ServerKind = process.argv[4] === 'bare' ? 'bare' : 'switchboard';
const dir = '/tmp/switchboard-prof';
rmSync(dir, { recursive: true, force: true });
mkdirSync(dir, { recursive: true });

const redisEnv = process.env.REDIS_URL ? { REDIS_URL: process.env.REDIS_URL, REDIS_PREFIX: `sbprof:${Date.now()}:` } : null;
const nodeCount = redisEnv && process.env.NODES === '2' ? 2 : 1;
const cpuOfNode = (n: number) => (process.env.PIN === 'bench' ? 1 : process.env.PIN ? (n === 0 ? 1 : 0) : null);
const servers = await Promise.all(
  Array.from({ length: nodeCount }, (_, n) =>
    startProcess({
      label: `${kind}-${n}`,
      kind,
      cpu: cpuOfNode(n),
      nodeArgs: process.env.NOPROF ? ['--perf-basic-prof'] : ['--cpu-prof', `--cpu-prof-dir=${dir}`],
      env: { ...redisEnv, ...envList(process.env.SERVER_ENV) },
    }),
  ),
);
const callerNode = servers[0]!;
if (process.env.PIN) pinSelf(0);
const counters = newCounters();
// Callers on the first node, callees on the last (the same one unless NODES=2).
const target = makeTarget(kind === 'bare' ? 'bare' : nodeCount > 1 ? 'switchboard-redis' : 'switchboard', servers);
const pairs = await connectPairs(target, pairCount, counters);
/** Read and write syscalls of one process so far (Linux /proc/<pid>/io). */
const syscallsOf = (pid: number): { r: number; w: number } => {
  const io = readFileSync(`/proc/${pid}/io`, 'utf8');
  const field = (name: string) => Number(new RegExp(`^${name}: (\\d+)$`, 'm').exec(io)?.[1] ?? NaN);
  return { r: field('syscr'), w: field('syscw') };
};
const warmupS = Number(process.env.WARMUP ?? 0);
if (warmupS > 0) await closedLoop(target, pairs, warmupS * 1000);
const sysBefore = servers.map((s) => syscallsOf(s.pid));
const nodeCpuBefore = servers.map((s) => s.cpuMs());
const window = await closedLoop(target, pairs, seconds * 1000);
const { calls } = window;
console.log(`${kind} (${nodeCount} node${nodeCount > 1 ? 's' : ''}): ${calls} calls in ${seconds} s = ${(calls / seconds).toFixed(0)}/s, ${window.serverCpuMsPerCall.toFixed(3)} server CPU ms per call, failed ${counters.failed}`);
servers.forEach((s, i) => {
  const after = syscallsOf(s.pid);
  const before = sysBefore[i]!;
  const cpu = (s.cpuMs() - nodeCpuBefore[i]!) / calls;
  console.log(`  ${s.label}: ${cpu.toFixed(3)} CPU ms, ${((after.r - before.r) / calls).toFixed(1)} read and ${((after.w - before.w) / calls).toFixed(1)} write syscalls per call`);
});
closePairs(pairs);
await Promise.all(servers.map((s) => s.stop()));
// The run's keys go with it (a 6 s run leaves some 40,000 history and call keys behind otherwise).
if (redisEnv) await dropPrefix(redisEnv.REDIS_URL, redisEnv.REDIS_PREFIX);

interface Node {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
// PIN=1: the caller's node alone on CPU 1, everything else on CPU 0, and only its profile is read
// (two processes sharing a core charge each other's time to whatever was running when preempted).
if (process.env.NOPROF) process.exit(0);
const files = readdirSync(dir).filter((f) => f.endsWith('.cpuprofile') && (!process.env.PIN || f.includes(`.${callerNode.pid}.`)));
if (files.length === 0) throw new Error('no profile written');
const byFn = new Map<string, number>();
let total = 0;
for (const file of files) {
  const profile = JSON.parse(readFileSync(`${dir}/${file}`, 'utf8')) as { nodes: Node[]; samples: number[]; timeDeltas: number[] };
  const self = new Map<number, number>();
  profile.samples.forEach((id, i) => self.set(id, (self.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0)));
  for (const node of profile.nodes) {
    const t = self.get(node.id) ?? 0;
    total += t;
    const f = node.callFrame;
    const where = f.url.replace(/^.*node_modules\//, '').replace(/^file:\/\/\/work\/main\//, '');
    const key = `${f.functionName || '(anonymous)'} ${where}:${f.lineNumber + 1}`;
    byFn.set(key, (byFn.get(key) ?? 0) + t);
  }
}
const idle = [...byFn.entries()].filter(([k]) => k.startsWith('(idle)')).reduce((a, [, v]) => a + v, 0);
console.log(`busy ${(((total - idle) / total) * 100).toFixed(0)}% of the profile`);
const categories = new Map<string, number>();
for (const [key, t] of byFn) {
  if (key.startsWith('(idle)')) continue;
  const where = key.slice(key.indexOf(' ') + 1);
  const cat = where.startsWith('packages/') || where.startsWith('bench/')
    ? where.split('/').slice(0, 2).join('/')
    : where.startsWith('node:') ? 'node internals'
    : where.startsWith(':') || where === '' ? `native ${key.split(' ')[0]}`
    : where.split('/')[0]!;
  categories.set(cat, (categories.get(cat) ?? 0) + t);
}
console.log('by area:');
for (const [cat, t] of [...categories].sort((a, b) => b[1] - a[1]).slice(0, 14)) console.log(`${((t / (total - idle)) * 100).toFixed(1).padStart(5)}%  ${cat}`);
console.log('hottest functions:');
for (const [key, t] of [...byFn.entries()].filter(([k]) => !k.startsWith('(idle)')).sort((a, b) => b[1] - a[1]).slice(0, 25)) {
  console.log(`${((t / (total - idle)) * 100).toFixed(1).padStart(5)}%  ${key}`);
}
