import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { validate as isUuid, version as uuidVersion } from 'uuid';
import {
  COPY_COLUMNS,
  type DayEvents,
  EVENT_TYPES,
  EventGenerator,
  type SeedEvent,
  escapeCopyText,
} from '../../../src/seed/event-generator.js';

const tenantId = '0b7d6a7e-3c1f-4f7e-9a51-2f5d8c1e4b01';
const now = Date.parse('2026-03-15T17:42:10.123Z');
const DAY = 86_400_000;
const PG_EPOCH_MS = 946_684_800_000;

function generator(overrides: Partial<ConstructorParameters<typeof EventGenerator>[0]> = {}) {
  return new EventGenerator({ tenantId, events: 100_000, days: 90, now, seed: 42, ...overrides });
}

function allEvents(g: EventGenerator): SeedEvent[] {
  return g.days.flatMap((d) => [...g.generateDay(d.index).events()]);
}

/** The default generator's events, generated once for the tests that only read them. */
let defaultEvents: SeedEvent[] | undefined;
const sample = () => (defaultEvents ??= allEvents(generator()));

/** COPY text format, read the way Postgres reads it (src/backend/commands/copyfromparse.c). */
function unescapeCopyText(field: string): string | null {
  if (field === '\\N') return null;
  return field.replace(/\\(.)/gs, (_, c: string) => ({ t: '\t', n: '\n', r: '\r', '\\': '\\' })[c] ?? c);
}

function decodeText(events: DayEvents): (string | null)[][] {
  const text = Buffer.concat([...events.copyChunks({ format: 'text', chunkBytes: 4096 })].map((c) => c.data)).toString(
    'utf8',
  );
  assert.ok(text.endsWith('\n'));
  return text
    .slice(0, -1)
    .split('\n')
    .map((line) => line.split('\t').map(unescapeCopyText));
}

/** COPY binary format for this table's column types. */
function decodeBinary(events: DayEvents): (string | number | null)[][] {
  const data = Buffer.concat([...events.copyChunks({ format: 'binary', chunkBytes: 4096 })].map((c) => c.data));
  assert.equal(data.subarray(0, 11).toString('latin1'), 'PGCOPY\n\xff\r\n\0');
  assert.equal(data.readInt32BE(11), 0, 'flags');
  let pos = 19 + data.readInt32BE(15);
  const rows: (string | number | null)[][] = [];
  for (;;) {
    const fields = data.readInt16BE(pos);
    pos += 2;
    if (fields === -1) break;
    assert.equal(fields, COPY_COLUMNS.length);
    const row: (string | number | null)[] = [];
    for (const column of COPY_COLUMNS) {
      const length = data.readInt32BE(pos);
      pos += 4;
      if (length === -1) {
        row.push(null);
        continue;
      }
      const bytes = data.subarray(pos, pos + length);
      pos += length;
      if (column === 'tenant_id' || column === 'id') {
        const hex = bytes.toString('hex');
        row.push(`${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`);
      } else if (column === 'occurred_at' || column === 'received_at') {
        row.push(Number(bytes.readBigInt64BE(0)) / 1000 + PG_EPOCH_MS);
      } else if (column === 'value') {
        row.push(bytes.readDoubleBE(0));
      } else if (column === 'properties') {
        assert.equal(bytes[0], 1, 'jsonb version');
        row.push(bytes.subarray(1).toString('utf8'));
      } else {
        row.push(bytes.toString('utf8'));
      }
    }
    rows.push(row);
  }
  assert.equal(pos, data.length, 'nothing after the trailer');
  return rows;
}

function asRow(e: SeedEvent): (string | number | null)[] {
  return [
    e.tenantId,
    e.id,
    e.type,
    e.userId,
    e.sessionId,
    e.messageId,
    e.occurredAt,
    e.receivedAt,
    e.value,
    e.properties,
  ];
}

describe('EventGenerator', () => {
  it('is deterministic for a seed, and differs between seeds', () => {
    const a = generator().generateDay(40);
    const b = generator().generateDay(40);
    assert.deepEqual([...a.events()], [...b.events()]);
    for (const format of ['text', 'binary'] as const) {
      const bytes = (d: DayEvents) => Buffer.concat([...d.copyChunks({ format })].map((c) => c.data));
      assert.ok(bytes(a).equals(bytes(b)), format);
    }
    const other = generator({ seed: 43 }).generateDay(40);
    assert.notDeepEqual(
      [...other.events()].slice(0, 10).map((e) => e.id),
      [...a.events()].slice(0, 10).map((e) => e.id),
    );
  });

  it('spreads exactly the requested events over the window, sorted by time within each UTC day', () => {
    const g = generator();
    assert.equal(g.to.getTime(), now);
    assert.equal(g.from.getTime(), now - 90 * DAY);
    assert.equal(g.days.length, 91, 'two partial days at the ends');
    assert.equal(
      g.days.reduce((n, d) => n + d.events, 0),
      100_000,
    );
    for (const day of g.days) {
      const events = [...g.generateDay(day.index).events()];
      assert.equal(events.length, day.events);
      assert.equal(day.partition, `events_${new Date(day.start).toISOString().slice(0, 10).replaceAll('-', '')}`);
      let previous = -Infinity;
      for (const e of events) {
        assert.ok(e.occurredAt >= previous, 'sorted');
        assert.ok(e.occurredAt >= day.from && e.occurredAt < day.to, 'inside the day and the window');
        assert.ok(e.occurredAt >= day.start && e.occurredAt < day.start + DAY);
        assert.ok(e.receivedAt >= e.occurredAt && e.receivedAt <= now, 'received after it occurred, not after now');
        previous = e.occurredAt;
      }
    }
    // Diurnal cycle: the busiest UTC hour sees well over the quietest.
    const byHour = new Array<number>(24).fill(0);
    for (const e of sample()) byHour[new Date(e.occurredAt).getUTCHours()]!++;
    assert.ok(Math.max(...byHour) > 2 * Math.min(...byHour), `hours ${byHour}`);
  });

  it('gives users Zipf-skewed activity, in sessions, with some anonymous events', () => {
    const g = generator();
    assert.equal(g.users, 1_000);
    const events = sample();
    const perUser = new Map<string, number>();
    for (const e of events) if (e.userId) perUser.set(e.userId, (perUser.get(e.userId) ?? 0) + 1);
    const counts = [...perUser.values()].sort((a, b) => b - a);
    const identified = counts.reduce((a, b) => a + b, 0);
    const top = counts.slice(0, g.users / 100).reduce((a, b) => a + b, 0);
    assert.ok(top / identified > 0.3, `top 1% of users hold ${((100 * top) / identified).toFixed(1)}% of events`);
    const anonymous = events.filter((e) => e.userId === null).length / events.length;
    assert.ok(anonymous > 0.03 && anonymous < 0.07, `anonymous share ${anonymous}`);

    const sessions = new Map<string, SeedEvent[]>();
    for (const e of events) {
      if (e.type === 'api_call') assert.equal(e.sessionId, null, 'server-side events have no session');
      if (!e.sessionId) continue;
      assert.ok(e.sessionId.startsWith(e.userId ? `s_${e.userId}_` : 's_anon_'), e.sessionId);
      const session = sessions.get(e.sessionId) ?? [];
      session.push(e);
      sessions.set(e.sessionId, session);
    }
    const sizes = [...sessions.values()].map((s) => s.length);
    const mean = sizes.reduce((a, b) => a + b, 0) / sizes.length;
    assert.ok(mean > 3 && mean < 10, `mean session length ${mean}`);
    for (const s of sessions.values()) {
      assert.equal(new Set(s.map((e) => e.userId)).size, 1, 'a session has one user');
      for (let i = 1; i < s.length; i++) assert.ok(s[i]!.occurredAt - s[i - 1]!.occurredAt < 30 * 60_000);
    }
  });

  it('uses every type with skewed weights, values where they mean something', () => {
    const events = sample();
    const perType = new Map<string, SeedEvent[]>();
    for (const e of events) {
      const list = perType.get(e.type) ?? [];
      list.push(e);
      perType.set(e.type, list);
    }
    assert.deepEqual([...perType.keys()].sort(), [...EVENT_TYPES].sort());
    const share = (t: string) => perType.get(t)!.length / events.length;
    assert.ok(share('page_view') > 0.3, 'page_view leads');
    assert.ok(share('purchase') < 0.03 && share('signup') < 0.03, 'conversions are rare');
    for (const type of ['purchase', 'add_to_cart', 'api_call', 'video_play']) {
      const values = perType.get(type)!.map((e) => e.value);
      assert.ok(
        values.every((v) => typeof v === 'number' && v > 0),
        type,
      );
      const sorted = (values as number[]).sort((a, b) => a - b);
      const median = sorted[Math.floor(sorted.length / 2)]!;
      assert.ok(sorted[sorted.length - 1]! > 5 * median, `${type} has a long tail`);
    }
    for (const type of ['page_view', 'click', 'logout', 'error']) {
      assert.ok(perType.get(type)!.every((e) => e.value === null));
    }
    assert.ok(perType.get('page_view')!.every((e) => JSON.parse(e.properties!).path.startsWith('/')));
    assert.ok(perType.get('click')!.every((e) => e.properties === null));
  });

  it('issues UUIDv7 ids carrying occurred_at, unique and in primary-key order', () => {
    // Dense enough for rows to share a millisecond now and then.
    const g = generator({ events: 40_000, days: 0.01 });
    let ties = 0;
    const seen = new Set<string>();
    for (const day of g.days) {
      let previous: SeedEvent | undefined;
      for (const e of g.generateDay(day.index).events()) {
        assert.ok(isUuid(e.id) && uuidVersion(e.id) === 7, e.id);
        assert.match(e.id, /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
        assert.equal(parseInt(e.id.replaceAll('-', '').slice(0, 12), 16), e.occurredAt);
        assert.ok(!seen.has(e.id));
        seen.add(e.id);
        if (previous?.occurredAt === e.occurredAt) {
          assert.ok(e.id > previous.id, 'same millisecond: ids increase');
          ties++;
        }
        previous = e;
      }
    }
    assert.ok(ties > 0, 'the sample had rows in the same millisecond');
  });
});

describe('COPY encoding', () => {
  it('escapes backslash, tab, newline and carriage return so that they round-trip', () => {
    const samples = ['plain', 'tab\there', 'line\nbreak', 'cr\rlf\r\n', 'back\\slash', '\\N', '\\\t\n\r\\', 'ünï😀'];
    for (const s of samples) {
      const escaped = escapeCopyText(s);
      assert.doesNotMatch(escaped, /[\t\n\r]/, 'no raw field or row separator left');
      assert.equal(unescapeCopyText(escaped), s);
    }
    assert.equal(escapeCopyText('a\\b\tc\nd\re'), 'a\\\\b\\tc\\nd\\re');
    assert.throws(() => escapeCopyText('nul\0'));
  });

  it('writes text and binary rows that decode to the generated events', () => {
    const g = generator({ events: 10_000, days: 3 });
    for (const day of g.days) {
      const events = g.generateDay(day.index);
      const expected = [...events.events()].map(asRow);
      const text = decodeText(events).map((row) =>
        row.map((field, i) => {
          const column = COPY_COLUMNS[i];
          if (field === null) return null;
          if (column === 'occurred_at' || column === 'received_at') return Date.parse(field);
          if (column === 'value') return Number(field);
          return field;
        }),
      );
      assert.deepEqual(text, expected, `text, ${day.partition}`);
      assert.deepEqual(decodeBinary(events), expected, `binary, ${day.partition}`);
    }
  });

  it('escapes the properties JSON, whose strings hold backslashes and escaped newlines', () => {
    const g = generator();
    let escapedSome = false;
    for (const day of g.days.slice(30, 40)) {
      const events = g.generateDay(day.index);
      const decoded = decodeText(events);
      decoded.forEach((row, i) => {
        const properties = events.event(i).properties;
        assert.equal(row[9], properties);
        if (properties?.includes('\\')) escapedSome = true;
      });
    }
    assert.ok(escapedSome, 'the sample covered JSON with backslashes');
  });

  it('ends chunks on row boundaries near the requested size', () => {
    const events = generator().generateDay(50);
    const chunks = [...events.copyChunks({ format: 'text', chunkBytes: 16_384 })];
    assert.ok(chunks.length > 10);
    assert.equal(
      chunks.reduce((n, c) => n + c.rows, 0),
      events.length,
    );
    for (const c of chunks.slice(0, -1)) {
      assert.ok(c.data.length >= 16_384 && c.data.length < 16_384 + 1_024);
      assert.equal(c.data[c.data.length - 1], 10);
      assert.equal(c.data.toString('utf8').split('\n').length - 1, c.rows);
    }
  });
});
