#!/usr/bin/env node
// Runs every test file of the repo with Node's test runner on the TypeScript
// sources (tsx, and the "source" export condition so workspaces resolve to src/).
// Usage: node scripts/run-tests.mjs [substring filter...]
import { spawn } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const roots = ['packages', 'apps', 'bench', 'examples'].map((d) => join(root, d));
const files = [];
const walk = (dir) => {
  let entries;
  try {
    entries = readdirSync(dir);
  } catch {
    return;
  }
  for (const name of entries) {
    if (name === 'node_modules' || name === 'dist') continue;
    const path = join(dir, name);
    if (statSync(path).isDirectory()) walk(path);
    else if (/\.test\.ts$/.test(name)) files.push(relative(root, path));
  }
};
roots.forEach(walk);
const filters = process.argv.slice(2);
const selected = files.filter((f) => filters.length === 0 || filters.some((x) => f.includes(x))).sort();
if (selected.length === 0) {
  console.error('no test files matched');
  process.exit(1);
}
const args = [
  '--conditions=source',
  '--import',
  'tsx',
  '--test',
  // A network-lab file (its lab, several calls through blocked networks) runs up to ~2 min on a loaded machine.
  '--test-timeout=240000',
  `--test-concurrency=${process.env.TEST_CONCURRENCY ?? 2}`,
  ...selected,
];
const child = spawn(process.execPath, args, { cwd: root, stdio: 'inherit' });
child.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
