/**
 * Writes the README's table of configuration variables from the one table
 * in packages/server/src/config.ts (`npm run docs:config`). config.test.ts
 * fails when the README and the table disagree.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { configTableMarkdown } from '../packages/server/src/config.js';

export const README = new URL('../README.md', import.meta.url);
export const START = '<!-- config-table: made by `npm run docs:config` from packages/server/src/config.ts -->';
export const END = '<!-- /config-table -->';

/** The README with its table section replaced by `table`. */
export function withTable(readme: string, table: string): string {
  const start = readme.indexOf(START);
  const end = readme.indexOf(END);
  if (start < 0 || end < start) throw new Error(`README.md has no ${START} … ${END} section`);
  return `${readme.slice(0, start + START.length)}\n${table}\n${readme.slice(end)}`;
}

if (process.argv[1] && new URL(`file://${process.argv[1]}`).href === import.meta.url) {
  const before = readFileSync(README, 'utf8');
  const after = withTable(before, configTableMarkdown());
  writeFileSync(README, after);
  console.log(before === after ? 'README.md: the table was up to date' : 'README.md: table of variables rewritten');
}
