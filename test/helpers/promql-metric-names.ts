/**
 * The metric names a PromQL expression reads: every identifier that is not a function, keyword or
 * aggregation, once label matchers, ranges, strings and grouping clauses are taken out. Good enough
 * for the expressions of docker/prometheus/alerts.yml and the Grafana dashboard, which
 * test/e2e/metrics-coverage.test.ts checks against /metrics.
 */
const NOT_METRICS = new Set([
  // aggregations and their modifiers
  'sum',
  'min',
  'max',
  'avg',
  'group',
  'stddev',
  'stdvar',
  'count',
  'count_values',
  'bottomk',
  'topk',
  'quantile',
  'by',
  'without',
  'on',
  'ignoring',
  'group_left',
  'group_right',
  'bool',
  'offset',
  'and',
  'or',
  'unless',
  'atan2',
  'inf',
  'nan',
]);

export function promqlMetricNames(expr: string): string[] {
  const stripped = expr
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'/g, '""')
    .replace(/\{[^}]*\}/g, ' ')
    .replace(/\[[^\]]*\]/g, ' ')
    // by (a, b), without (...), on (...), ignoring (...), group_left (...): label names, not metrics
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ')
    .replace(/\$\w+/g, ' ');
  const names = new Set<string>();
  for (const match of stripped.matchAll(/(?<![\w.])([a-zA-Z_:][\w:]*)\s*(\()?/g)) {
    const [, name, call] = match;
    if (call || NOT_METRICS.has(name!.toLowerCase())) continue;
    // Durations like 5m are not identifiers (they start with a digit); so are numbers.
    names.add(name!);
  }
  return [...names].sort();
}

/**
 * The label names an expression relies on: those in each selector's matchers, by metric
 * (`name{a="x"}`), and those its grouping clauses name (`by (a)`, `on (a)`, …), for the whole
 * expression.
 */
export function promqlLabels(expr: string): { selectors: Map<string, Set<string>>; grouping: Set<string> } {
  const unquoted = expr.replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'/g, '""');
  const selectors = new Map<string, Set<string>>();
  for (const [, metric, matchers] of unquoted.matchAll(/([a-zA-Z_:][\w:]*)\s*\{([^}]*)\}/g)) {
    const labels = selectors.get(metric!) ?? new Set<string>();
    for (const [, label] of matchers!.matchAll(/([a-zA-Z_]\w*)\s*(?:=~|!~|!=|=)/g)) labels.add(label!);
    selectors.set(metric!, labels);
  }
  const grouping = new Set<string>();
  for (const [, , list] of unquoted.matchAll(/\b(by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)/g)) {
    for (const label of list!.split(',').map((l) => l.trim())) if (label) grouping.add(label);
  }
  return { selectors, grouping };
}
