import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { bucketOf, quantiles } from '../../../src/realtime/log-histogram.js';

/** percentile_cont over a sorted array, as Postgres computes it. */
function exact(sorted: number[], q: number): number {
  const h = q * (sorted.length - 1);
  const lo = Math.floor(h);
  return sorted[lo]! + (h - lo) * ((sorted[Math.min(lo + 1, sorted.length - 1)] ?? 0) - sorted[lo]!);
}

function histogram(values: number[]): Map<string, number> {
  const counts = new Map<string, number>();
  for (const v of values) counts.set(bucketOf(v), (counts.get(bucketOf(v)) ?? 0) + 1);
  return counts;
}

function lcg(seed: number) {
  let s = seed >>> 0;
  return () => (s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32;
}

const QS = [0.5, 0.95, 0.99];

describe('log-scale histogram', () => {
  it('reads p50, p95 and p99 within 1% of the exact percentiles of long-tailed values', () => {
    const rnd = lcg(7);
    for (const [name, draw] of [
      [
        'log-normal',
        () => Math.exp(3 + 1.5 * Math.sqrt(-2 * Math.log(rnd() || 1e-12)) * Math.cos(2 * Math.PI * rnd())),
      ],
      ['pareto', () => 10 / (rnd() || 1e-12) ** (1 / 1.2)],
      ['uniform cents', () => Math.round(rnd() * 100_000) / 100 + 0.01],
    ] as const) {
      for (const n of [50, 1_000, 20_000]) {
        const values = Array.from({ length: n }, draw);
        const sorted = [...values].sort((a, b) => a - b);
        const got = quantiles(histogram(values), QS);
        QS.forEach((q, i) => {
          const want = exact(sorted, q);
          assert.ok(Math.abs(got[i]! - want) <= 0.01 * Math.abs(want), `${name} n=${n} q=${q}: ${got[i]} vs ${want}`);
        });
      }
    }
  });

  it('orders negative values, zeros and positive values, and merges by adding counts', () => {
    const a = [-500, -2.5, 0, 0, 1e-12, 3, 7];
    const b = [-1, 0.5, 40, 1_000, 2_000];
    const merged = histogram(a);
    for (const [bucket, n] of histogram(b)) merged.set(bucket, (merged.get(bucket) ?? 0) + n);
    const all = [...a, ...b].sort((x, y) => x - y);
    const got = quantiles(merged, [0, 0.25, 0.5, 0.75, 1]);
    [0, 0.25, 0.5, 0.75, 1].forEach((q, i) => {
      const want = exact(all, q);
      assert.ok(Math.abs(got[i]! - want) <= 0.01 * Math.abs(want) + 1e-9, `q=${q}: ${got[i]} vs ${want}`);
    });
    assert.equal(bucketOf(1e-12), 'z');
    assert.ok(bucketOf(-3).startsWith('n') && bucketOf(3).startsWith('p'));
  });

  it('answers null without values', () => {
    assert.deepEqual(quantiles(new Map(), QS), [null, null, null]);
  });
});
