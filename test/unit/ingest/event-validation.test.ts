import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  MAX_FUTURE_MS,
  MAX_PROPERTIES_DEPTH,
  eventTime,
  normalizeEvent,
} from '../../../src/ingest/event-validation.js';
import { decodeStreamEvent, encodeStreamEvent } from '../../../src/ingest/stream-event.js';
import { createStreamKeys } from '../../../src/redis/keys.js';

const tenantId = '0b5f4f5e-7a8e-4c1e-9d0a-2f6f1c3b9a11';
const receivedAt = Date.parse('2026-11-22T12:00:00Z');
const receipt = { tenantId, receivedAt };

function reject(input: Parameters<typeof normalizeEvent>[0]): string {
  const result = normalizeEvent(input, receipt);
  assert.equal(result.ok, false, JSON.stringify(input));
  return (result as { message: string }).message;
}

interface StreamEventLike {
  id: string;
  occurredAt: number;
}

describe('normalizeEvent', () => {
  it('refuses text Postgres cannot store, naming the field', () => {
    assert.match(reject({ type: 'a', userId: 'u\u0000' }), /^userId holds .*NUL/);
    assert.match(reject({ type: 'a', sessionId: '\ud800' }), /^sessionId holds/);
    assert.match(reject({ type: 'a', messageId: 'x\udc00' }), /^messageId holds/);
    assert.match(reject({ type: 'a', properties: { k: ['ok', 'b\u0000'] } }), /^properties holds/);
    assert.match(reject({ type: 'a', properties: { ['\ud83d']: 1 } }), /^properties holds/);
    // A surrogate pair is a character like any other.
    assert.equal(
      normalizeEvent({ type: 'a', userId: '\ud83d\ude00', properties: { e: '\ud83d\ude00' } }, receipt).ok,
      true,
    );
  });

  it(`refuses properties nested deeper than ${MAX_PROPERTIES_DEPTH}, however deep, without overflowing the stack`, () => {
    // `levels` objects and arrays, alternating, the outermost an object.
    const nest = (levels: number) => {
      let value: unknown = 'leaf';
      for (let i = levels - 1; i >= 1; i--) value = i % 2 ? [value] : { a: value };
      return { a: value } as Record<string, unknown>;
    };
    assert.equal(normalizeEvent({ type: 'a', properties: nest(MAX_PROPERTIES_DEPTH) }, receipt).ok, true);
    assert.match(reject({ type: 'a', properties: nest(MAX_PROPERTIES_DEPTH + 1) }), /nested deeper than 32/);
    // Not through reject(): its message would JSON.stringify the input, which does overflow.
    const deep = normalizeEvent({ type: 'a', properties: nest(200_000) }, receipt);
    assert.match(deep.ok ? '' : deep.message, /nested deeper than 32/);
  });

  it('refuses properties over 32 KiB before serializing them, whatever their shape', () => {
    assert.match(reject({ type: 'a', properties: { s: 'x'.repeat(40_000) } }), /at most 32768 bytes/);
    assert.match(
      reject({ type: 'a', properties: Object.fromEntries(Array.from({ length: 40_000 }, (_, i) => [`k${i}`, 1])) }),
      /at most 32768 bytes/,
    );
    assert.match(
      reject({ type: 'a', properties: { list: Array.from({ length: 40_000 }, () => 0) } }),
      /at most 32768 bytes/,
    );
    assert.equal(normalizeEvent({ type: 'a', properties: { s: 'x'.repeat(30_000) } }, receipt).ok, true);
  });

  it('accepts a full event and fixes its id and times', () => {
    const result = normalizeEvent(
      {
        type: 'checkout.completed',
        userId: 'u1',
        sessionId: 's1',
        messageId: 'm1',
        value: 12.5,
        properties: { plan: 'pro' },
      },
      receipt,
    );
    assert.ok(result.ok);
    assert.equal(result.event.tenantId, tenantId);
    assert.match(result.event.id, /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/, 'a UUIDv7');
    assert.equal(result.event.occurredAt, receivedAt);
    assert.equal(result.event.properties, '{"plan":"pro"}');
  });

  it('issues unique ids that carry the event time (UUIDv7 milliseconds), so ids sort by event time', () => {
    const base = receipt.receivedAt - 10_000;
    const events = Array.from(
      { length: 200 },
      (_, i) =>
        (normalizeEvent({ type: 't', timestamp: new Date(base + i) }, receipt) as { event: StreamEventLike }).event,
    );
    const ids = events.map((e) => e.id);
    assert.deepEqual([...ids].sort(), ids);
    assert.equal(new Set(ids).size, ids.length);
    for (const e of events) assert.equal(parseInt(e.id.replace(/-/g, '').slice(0, 12), 16), e.occurredAt);
    const sameMs = Array.from(
      { length: 100 },
      () => (normalizeEvent({ type: 't' }, receipt) as { event: StreamEventLike }).event.id,
    );
    assert.equal(new Set(sameMs).size, sameMs.length);
  });

  it('rejects each field outside the contract, with a message naming it', () => {
    assert.match(reject({ type: '' }), /type/);
    assert.match(reject({ type: 'has space' }), /type/);
    assert.match(reject({ type: 'x'.repeat(129) }), /type/);
    assert.ok(normalizeEvent({ type: 'a-Z_0.9:x' }, receipt).ok);
    assert.match(reject({ type: 't', userId: 'u'.repeat(257) }), /userId/);
    assert.match(reject({ type: 't', userId: '' }), /userId/);
    assert.match(reject({ type: 't', sessionId: 's'.repeat(257) }), /sessionId/);
    assert.match(reject({ type: 't', messageId: 'm'.repeat(129) }), /messageId/);
    assert.ok(normalizeEvent({ type: 't', messageId: 'm'.repeat(128), userId: 'u'.repeat(256) }, receipt).ok);
    assert.match(reject({ type: 't', value: Number.NaN }), /value/);
    assert.match(reject({ type: 't', value: Number.POSITIVE_INFINITY }), /value/);
    assert.match(reject({ type: 't', properties: [1, 2] }), /properties/);
    assert.match(reject({ type: 't', properties: 'text' }), /properties/);
    assert.match(reject({ type: 't', timestamp: new Date('nope') }), /timestamp/);
  });

  it('limits properties to 32 KiB of UTF-8', () => {
    assert.ok(normalizeEvent({ type: 't', properties: { s: 'a'.repeat(32 * 1024 - 8) } }, receipt).ok);
    assert.match(reject({ type: 't', properties: { s: 'a'.repeat(32 * 1024) } }), /32768 bytes/);
    // 3 bytes per character in UTF-8: 11,000 characters are 33,000 bytes.
    assert.match(reject({ type: 't', properties: { s: '€'.repeat(11_000) } }), /32768 bytes/);
  });
});

describe('event time', () => {
  it('defaults to the receipt time', () => {
    assert.equal(eventTime(undefined, receipt), receivedAt);
    assert.equal(eventTime(null, { ...receipt, sentAt: receivedAt - 5_000 }), receivedAt);
  });

  it('corrects clock skew from sentAt: timestamp = receivedAt − (sentAt − timestamp)', () => {
    // The client's clock runs 1 h fast: it sent at 13:00:10 an event stamped 13:00:00.
    const sentAt = Date.parse('2026-11-22T13:00:10Z');
    const stamped = new Date('2026-11-22T13:00:00Z');
    assert.equal(eventTime(stamped, { ...receipt, sentAt }), receivedAt - 10_000);
  });

  it('clamps events more than an hour in the future to the receipt time', () => {
    assert.equal(eventTime(new Date(receivedAt + MAX_FUTURE_MS + 1_000), receipt), receivedAt);
    assert.equal(eventTime(new Date(receivedAt + MAX_FUTURE_MS - 1_000), receipt), receivedAt + MAX_FUTURE_MS - 1_000);
    const past = new Date('2026-01-01T00:00:00Z');
    assert.equal(eventTime(past, receipt), past.getTime());
  });
});

describe('stream encoding', () => {
  it('round-trips an event and refuses malformed payloads', () => {
    const result = normalizeEvent({ type: 't', userId: 'u', value: 1.5, properties: { a: [1] } }, receipt);
    assert.ok(result.ok);
    assert.deepEqual(decodeStreamEvent(encodeStreamEvent(result.event)), result.event);
    for (const bad of [
      'not json',
      '{}',
      '[2]',
      JSON.stringify([1, 'x', 'y', 't', null, null, null, 1, 1, null, null]),
    ]) {
      assert.throws(() => decodeStreamEvent(bad));
    }
  });

  it('routes a tenant and key to the same partition in every process, and spreads them', () => {
    const keys = createStreamKeys('p:', 8);
    assert.equal(keys.partitionOf(tenantId, 'm1'), keys.partitionOf(tenantId, 'm1'));
    const used = new Set(Array.from({ length: 200 }, (_, i) => keys.partitionOf(tenantId, `m${i}`)));
    assert.equal(used.size, 8);
    assert.match(keys.stream(3), /^p:\{events:3\}$/);
    assert.match(keys.dedupe(3, tenantId, 'm1'), /^p:\{events:3\}:dedupe:/, 'same hash tag as its stream');
    assert.equal(createStreamKeys('p:', 1).partitionOf(tenantId, 'anything'), 0);
  });
});
