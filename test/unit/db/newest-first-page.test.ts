import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { msAbove, newestFirstWindows } from '../../../src/db/newest-first-page.js';

const DAY = 86_400_000;
const at = (iso: string) => new Date(iso).getTime();
const show = (w: { from: Date | null; to: Date }) => [w.from?.toISOString() ?? null, w.to.toISOString()];

describe('newestFirstWindows', () => {
  it('walks today, yesterday, the 30 days before, then everything older, each ending where the last began', () => {
    const now = at('2026-12-03T14:00:00Z');
    assert.deepEqual([...newestFirstWindows(now + 3_900_000, null, now)].map(show), [
      ['2026-12-03T00:00:00.000Z', '2026-12-03T15:05:00.000Z'],
      ['2026-12-02T00:00:00.000Z', '2026-12-03T00:00:00.000Z'],
      ['2026-11-04T00:00:00.000Z', '2026-12-02T00:00:00.000Z'],
      [null, '2026-11-04T00:00:00.000Z'],
    ]);
  });

  it('counts days from now when the top is past midnight, and from the top when it is earlier', () => {
    const now = at('2026-12-03T23:30:00Z');
    const [first] = newestFirstWindows(now + 3_900_000, null, now);
    assert.deepEqual(show(first!), ['2026-12-03T00:00:00.000Z', '2026-12-04T00:35:00.000Z']);
    const cursor = at('2026-10-01T00:00:00.000Z') + 1;
    const [fromCursor] = newestFirstWindows(cursor, null, now);
    assert.deepEqual(show(fromCursor!), ['2026-10-01T00:00:00.000Z', '2026-10-01T00:00:00.001Z']);
  });

  it('stops at the caller’s own lower bound, leaving that window open below', () => {
    const now = at('2026-12-03T14:00:00Z');
    assert.deepEqual([...newestFirstWindows(now, new Date(now - 3 * DAY), now)].map(show), [
      ['2026-12-03T00:00:00.000Z', '2026-12-03T14:00:00.000Z'],
      ['2026-12-02T00:00:00.000Z', '2026-12-03T00:00:00.000Z'],
      [null, '2026-12-02T00:00:00.000Z'],
    ]);
    assert.deepEqual([...newestFirstWindows(now, new Date(now - 60_000), now)].map(show), [
      [null, '2026-12-03T14:00:00.000Z'],
    ]);
  });
});

describe('msAbove', () => {
  it('is the first millisecond after a microsecond time, before 1970 too', () => {
    assert.equal(msAbove('1764770400123456'), 1764770400124);
    assert.equal(msAbove('1764770400123000'), 1764770400124);
    assert.equal(msAbove('-1500'), -1);
    assert.equal(msAbove('-1000'), 0);
  });
});
