/**
 * `npm run bench`: drives whole calls against Switchboard and a bare Socket.IO
 * relay, interleaved, and writes bench/results/<timestamp>.{json,md,svg}.
 * `npm run bench -- --help` lists the flags.
 */
import { relative } from 'node:path';
import { HELP, parseOptions } from './options.js';
import { writeResults } from './output.js';
import { ROOT } from './processes.js';
import { runBench } from './run.js';

let options;
try {
  options = parseOptions(process.argv.slice(2));
} catch (err) {
  process.stderr.write(`bench: ${err instanceof Error ? err.message : String(err)}\n\n${HELP}`);
  process.exit(2);
}
if (options === 'help') {
  process.stdout.write(HELP);
  process.exit(0);
}

const report = await runBench(options);
const written = writeResults(report, options.outDir);
process.stdout.write('\n');
for (const c of report.checks) {
  process.stdout.write(`${c.ok === null ? '  -  ' : c.ok ? ' ok  ' : ' NO  '} ${c.name}: ${c.value} (target ${c.target})\n`);
}
for (const n of report.notes) process.stdout.write(`note: ${n}\n`);
process.stdout.write(`\nwrote ${[written.markdown, written.json, written.svg].filter(Boolean).map((p) => relative(ROOT, p!)).join(', ')}\n`);
// Sockets of the generator may still be closing: the run is over.
process.exit(0);
