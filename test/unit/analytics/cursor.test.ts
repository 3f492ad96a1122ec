import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { decodeCursor, encodeCursor, pageSize } from '../../../src/analytics/cursor.js';
import { stableJson } from '../../../src/analytics/query-cache.js';

const codeOf = (fn: () => unknown) => {
  try {
    fn();
  } catch (err) {
    return (err as { extensions?: { code?: string } }).extensions?.code;
  }
  return 'no error';
};

describe('cursors', () => {
  it('round-trip their key and are opaque base64url', () => {
    const cursor = encodeCursor(['1763800000000123', '019aa8c0-1234-7000-8000-000000000000']);
    assert.match(cursor, /^[A-Za-z0-9_-]+$/);
    assert.deepEqual(decodeCursor(cursor, 2), ['1763800000000123', '019aa8c0-1234-7000-8000-000000000000']);
  });

  it('refuse anything they did not produce with BAD_USER_INPUT', () => {
    for (const junk of [
      '',
      'not-base64!',
      Buffer.from('{"a":1}').toString('base64url'),
      encodeCursor(['x']),
      encodeCursor(['a', 'b', 'c']),
    ]) {
      assert.equal(
        codeOf(() => decodeCursor(junk, 2)),
        'BAD_USER_INPUT',
        junk,
      );
    }
    assert.equal(
      codeOf(() => decodeCursor(Buffer.from('[1,2]').toString('base64url'), 2)),
      'BAD_USER_INPUT',
    );
    assert.equal(
      codeOf(() => decodeCursor(encodeCursor(['a'.repeat(600), 'b']), 2)),
      'BAD_USER_INPUT',
    );
  });
});

describe('page sizes', () => {
  it('default, accept 1..max, and refuse the rest', () => {
    assert.equal(pageSize(null), 20);
    assert.equal(pageSize(undefined, 10), 10);
    assert.equal(pageSize(100), 100);
    for (const bad of [0, -1, 101, 1.5])
      assert.equal(
        codeOf(() => pageSize(bad)),
        'BAD_USER_INPUT',
        String(bad),
      );
  });
});

describe('cache keys (stableJson)', () => {
  it('do not depend on key order, and tell null, dates and values apart', () => {
    const at = new Date('2026-11-22T00:00:00Z');
    assert.equal(stableJson({ b: 1, a: [at, null] }), stableJson({ a: [new Date(at), null], b: 1 }));
    assert.notEqual(stableJson({ type: null }), stableJson({ type: 'null' }));
    assert.notEqual(stableJson({ from: at }), stableJson({ from: new Date(at.getTime() + 1) }));
    assert.equal(stableJson({ a: undefined, b: 2 }), stableJson({ b: 2 }));
  });
});
