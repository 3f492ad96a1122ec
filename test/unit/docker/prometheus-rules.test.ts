import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { parse } from 'yaml';
import { amtoolOrSkip, promtoolOrSkip } from '../../helpers/promtool.js';

/**
 * The alert rules of docker/prometheus: valid for Prometheus (promtool check), each proven by a
 * scene in which it fires and one in which it stays quiet (promtool test rules), each linked to
 * its own section of docs/runbook.md. No Prometheus server runs for this: promtool evaluates
 * the rules against the series the test file spells out.
 */
interface Rule {
  alert?: string;
  expr: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}
interface RuleTests {
  rule_files: string[];
  tests: Array<{ alert_rule_test?: Array<{ alertname: string; exp_alerts: unknown[] }> }>;
}

const rules = (
  parse(readFileSync('docker/prometheus/alerts.yml', 'utf8')) as { groups: Array<{ rules: Rule[] }> }
).groups
  .flatMap((g) => g.rules)
  .filter((r) => r.alert);
const ruleTests = parse(readFileSync('docker/prometheus/alerts.test.yml', 'utf8')) as RuleTests;

/** GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens. */
function anchors(markdown: string): Set<string> {
  return new Set(
    [...markdown.matchAll(/^#{1,6}\s+(.+)$/gm)].map((m) =>
      m[1]!
        .trim()
        .toLowerCase()
        .replace(/[^\w\- ]/g, '')
        .replace(/ /g, '-'),
    ),
  );
}

describe('docker/prometheus alert rules', () => {
  // promtool check config (which loads these rules too) runs in docker-files.test.ts.
  it('pass promtool check rules and test rules', (t) => {
    const promtool = promtoolOrSkip(t);
    if (!promtool) return;
    assert.match(
      promtool('check', 'rules', 'docker/prometheus/alerts.yml'),
      new RegExp(`SUCCESS: ${rules.length} rules`),
    );
    assert.match(promtool('test', 'rules', 'docker/prometheus/alerts.test.yml'), /SUCCESS/);
  });

  it('reach the receiver of their severity in Alertmanager (amtool)', (t) => {
    const amtool = amtoolOrSkip(t);
    if (!amtool) return;
    const config = '--config.file=docker/alertmanager/alertmanager.yml';
    assert.match(amtool('check-config', 'docker/alertmanager/alertmanager.yml'), /SUCCESS/);
    for (const rule of rules) {
      const receiver = amtool(
        'config',
        'routes',
        'test',
        config,
        `alertname=${rule.alert}`,
        `severity=${rule.labels!.severity}`,
      );
      assert.equal(
        receiver.split('\n').find((l) => l.endsWith('-webhook')),
        `${rule.labels!.severity}-webhook`,
        rule.alert,
      );
    }
  });

  it('are at least ten, each with a severity the Alertmanager routes', () => {
    assert.ok(rules.length >= 10, `${rules.length} alerts`);
    const routing = readFileSync('docker/alertmanager/alertmanager.yml', 'utf8');
    for (const rule of rules) {
      const severity = rule.labels?.severity;
      assert.ok(severity === 'critical' || severity === 'warning', `${rule.alert} has severity ${severity}`);
      assert.ok(routing.includes(`severity="${severity}"`), `${severity} is routed`);
      assert.ok(rule.annotations?.summary, `${rule.alert} has a summary`);
    }
  });

  it('each link to an existing section of docs/runbook.md', () => {
    const sections = anchors(readFileSync('docs/runbook.md', 'utf8'));
    for (const rule of rules) {
      const url = rule.annotations?.runbook_url ?? '';
      const [path, anchor] = url.split('#');
      assert.equal(path, 'docs/runbook.md', `${rule.alert} links to the runbook`);
      assert.ok(existsSync(path!));
      assert.ok(sections.has(anchor!), `${rule.alert}: docs/runbook.md has a section #${anchor}`);
    }
  });

  it('each have a promtool case in which they fire and one in which they do not', () => {
    assert.deepEqual(ruleTests.rule_files, ['alerts.yml']);
    const cases = ruleTests.tests.flatMap((t) => t.alert_rule_test ?? []);
    for (const rule of rules) {
      const own = cases.filter((c) => c.alertname === rule.alert);
      assert.ok(
        own.some((c) => c.exp_alerts.length > 0),
        `${rule.alert} has a case in which it fires`,
      );
      assert.ok(
        own.some((c) => c.exp_alerts.length === 0),
        `${rule.alert} has a case in which it stays quiet`,
      );
    }
  });
});
