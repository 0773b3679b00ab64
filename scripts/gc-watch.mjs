// Preloaded into a server by scripts/gc-latency.ts (`node --import`): records each
// GC (start as epoch ms, duration, kind, old-generation bytes after it) and each
// event-loop stall over 4 ms, to GC_WATCH_DIR/events-<pid>.jsonl. With SIGUSR2
// it starts V8's sampling heap profiler (objects a scavenge did not collect) and
// on the next SIGUSR2 writes GC_WATCH_DIR/heap-<pid>.json.
import { appendFileSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector';
import { PerformanceObserver, performance } from 'node:perf_hooks';
import v8 from 'node:v8';

const dir = process.env.GC_WATCH_DIR ?? '/tmp';
const out = `${dir}/events-${process.pid}.jsonl`;
const oldBytes = () =>
  v8.getHeapSpaceStatistics().filter((s) => s.space_name === 'old_space' || s.space_name === 'large_object_space').reduce((sum, s) => sum + s.space_used_size, 0);
let lines = [];
const flush = () => {
  if (lines.length > 0) appendFileSync(out, lines.join('\n') + '\n');
  lines = [];
};
new PerformanceObserver((list) => {
  for (const e of list.getEntries()) lines.push(JSON.stringify({ type: 'gc', t: performance.timeOrigin + e.startTime, d: e.duration, k: e.detail?.kind, old: oldBytes() }));
}).observe({ entryTypes: ['gc'] });
let last = performance.now();
setInterval(() => {
  const now = performance.now();
  const late = now - last - 2;
  if (late > 4) lines.push(JSON.stringify({ type: 'stall', t: performance.timeOrigin + last, d: late }));
  last = now;
}, 2).unref();
setInterval(flush, 500).unref();
process.on('SIGTERM', flush);

let sampling = null;
process.on('SIGUSR2', () => {
  if (!sampling) {
    sampling = new Session();
    sampling.connect();
    sampling.post('HeapProfiler.enable');
    sampling.post('HeapProfiler.startSampling', { samplingInterval: 16384, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: false });
    return;
  }
  sampling.post('HeapProfiler.stopSampling', (err, res) => {
    writeFileSync(`${dir}/heap-${process.pid}.json`, JSON.stringify(err ? { error: String(err) } : res.profile));
    sampling.disconnect();
    sampling = null;
  });
});
