/** Writes a run's report: <out>/<timestamp>.json, .md and (with offered-load results) .svg. */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { latencyChart } from './chart.js';
import { markdownReport } from './report.js';
import type { BenchReport } from './run.js';

export interface Written {
  json: string;
  markdown: string;
  svg: string | null;
}

export function writeResults(report: BenchReport, outDir: string): Written {
  mkdirSync(outDir, { recursive: true });
  const stamp = report.meta.startedAt.replace(/\.\d+Z$/, 'Z').replace(/:/g, '-');
  const json = join(outDir, `${stamp}.json`);
  const markdown = join(outDir, `${stamp}.md`);
  let svg: string | null = null;
  if (report.load && report.load.points.length > 0) {
    svg = join(outDir, `${stamp}.svg`);
    writeFileSync(svg, latencyChart(report.load, `${report.meta.startedAt} · ${report.meta.command}`));
  }
  writeFileSync(json, `${JSON.stringify(report, null, 2)}\n`);
  writeFileSync(markdown, markdownReport(report, svg ? `${stamp}.svg` : null));
  return { json, markdown, svg };
}
