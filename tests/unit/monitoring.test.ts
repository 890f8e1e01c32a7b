/**
 * monitoring/: the alert rules pass `promtool check rules` and their unit tests (`promtool test
 * rules`; Debian package prometheus, which .ci/run installs), and every expression of the rules
 * and of the Grafana dashboard names only metrics the exporter exports.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { createMetrics } from '../../src/exporter/metrics.js';

const dir = fileURLToPath(new URL('../../monitoring/', import.meta.url));
const read = (file: string) => fs.readFileSync(dir + file, 'utf8');
const exported = new Set(
  createMetrics()
    .registry.getMetricsAsArray()
    .map((m) => m.name),
);

function promtool(...args: string[]): { status: number | null; output: string } {
  const r = spawnSync('promtool', args, { cwd: dir, encoding: 'utf8' });
  if (r.error) throw new Error(`promtool is needed (Debian package prometheus; .ci/run installs it): ${r.error.message}`);
  return { status: r.status, output: `${r.stdout}${r.stderr}` };
}

/** caseguard_* names in a PromQL expression. */
const metricNames = (expr: string) => [...expr.matchAll(/\bcaseguard_[a-z_]+\b/g)].map((m) => m[0]);

interface Panel {
  id: number;
  title: string;
  datasource: { uid: string };
  gridPos: { x: number; w: number };
  targets: Array<{ expr: string }>;
}

describe('monitoring/', () => {
  it('alerts.yml passes promtool check rules', () => {
    const r = promtool('check', 'rules', 'alerts.yml');
    expect(r.output).toContain('SUCCESS: 6 rules found');
    expect(r.status).toBe(0);
  });

  it('every alert fires and stays quiet where its promtool unit test says', () => {
    const r = promtool('test', 'rules', 'alerts.test.yml');
    expect(r.output).toContain('SUCCESS');
    expect(r.status).toBe(0);
  });

  it('every alert names only exported metrics, and has a summary, a description and a runbook naming a caseguard command', () => {
    const text = read('alerts.yml');
    const exprs = [...text.matchAll(/^\s+expr: (.+)$/gm)].map((m) => m[1]!);
    expect(exprs).toHaveLength(6);
    for (const expr of exprs) {
      expect(metricNames(expr).length).toBeGreaterThan(0);
      for (const name of metricNames(expr)) expect(exported, `${name} in ${expr}`).toContain(name);
    }
    for (const key of ['summary', 'description']) expect(text.match(new RegExp(`^\\s+${key}: `, 'gm'))).toHaveLength(6);
    const runbooks = [...text.matchAll(/^\s+runbook: "(.+)"$/gm)].map((m) => m[1]!);
    expect(runbooks).toHaveLength(6);
    for (const runbook of runbooks) expect(runbook).toMatch(/caseguard (scan|recover|runs|funnel)/);
  });

  it('dashboard.json is importable as is and every expression names only exported metrics', () => {
    const dashboard = JSON.parse(read('dashboard.json')) as {
      uid: string;
      panels: Panel[];
      templating: { list: Array<{ name: string; type: string }> };
    };
    expect(dashboard.templating.list.find((v) => v.name === 'datasource')?.type).toBe('datasource');
    const ids = dashboard.panels.map((p) => p.id);
    expect(new Set(ids).size).toBe(ids.length);
    const used = new Set<string>();
    for (const panel of dashboard.panels) {
      expect(panel.datasource.uid, panel.title).toBe('${datasource}');
      expect(panel.gridPos.x + panel.gridPos.w, panel.title).toBeLessThanOrEqual(24);
      expect(panel.targets.length, panel.title).toBeGreaterThan(0);
      for (const target of panel.targets) {
        const names = metricNames(target.expr);
        expect(names.length, target.expr).toBeGreaterThan(0);
        for (const name of names) {
          expect(exported, `${name} in panel "${panel.title}"`).toContain(name);
          used.add(name);
        }
      }
    }
    // orphans, recoveries, the funnel, the ratio and refresh health are all on it
    for (const name of [
      'caseguard_findings',
      'caseguard_recovered_cases',
      'caseguard_intakes',
      'caseguard_intake_completion_ratio',
      'caseguard_up',
      'caseguard_last_refresh_timestamp_seconds',
    ]) {
      expect(used).toContain(name);
    }
  });
});
