import type { StreamEvent } from './stream-event.js';

/** The columns `encodeEventsCopy` writes, in order (the events table's, see migrations/1763769600000_foundation.sql). */
export const EVENT_COPY_COLUMNS = [
  'tenant_id',
  'id',
  'type',
  'user_id',
  'session_id',
  'message_id',
  'occurred_at',
  'received_at',
  'value',
  'properties',
] as const;

const SIGNATURE = Buffer.from('PGCOPY\n\xff\r\n\0', 'latin1');
/** Postgres' timestamp epoch (2000-01-01 UTC) in Unix ms. */
const PG_EPOCH_MS = 946_684_800_000;
const TWO_32 = 2 ** 32;

/**
 * Events as one COPY BINARY payload: Postgres reads binary values without parsing text (uuids,
 * timestamps and floats as bytes), and Node builds no string per value. Text values go in as
 * UTF-8 as they are: one Postgres refuses (a NUL, or properties that are not JSON) fails the
 * COPY with a data error, which the persist worker isolates (src/ingest/persist.worker.ts).
 */
export function encodeEventsCopy(events: readonly StreamEvent[]): Buffer {
  const w = new Writer(64 + events.length * 256);
  w.bytes(SIGNATURE);
  w.int32(0); // flags
  w.int32(0); // header extension length
  for (const e of events) {
    w.int16(EVENT_COPY_COLUMNS.length);
    w.uuid(e.tenantId);
    w.uuid(e.id);
    w.text(e.type);
    w.text(e.userId);
    w.text(e.sessionId);
    w.text(e.messageId);
    w.timestamp(e.occurredAt);
    w.timestamp(e.receivedAt);
    if (e.value === null) w.int32(-1);
    else {
      w.int32(8);
      w.reserve(8);
      w.buf.writeDoubleBE(e.value, w.at);
      w.at += 8;
    }
    w.jsonb(e.properties);
  }
  w.int16(-1);
  return w.buf.subarray(0, w.at);
}

class Writer {
  buf: Buffer;
  at = 0;
  constructor(size: number) {
    this.buf = Buffer.allocUnsafe(size);
  }
  reserve(n: number): void {
    if (this.at + n <= this.buf.length) return;
    const grown = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.at + n));
    this.buf.copy(grown, 0, 0, this.at);
    this.buf = grown;
  }
  bytes(b: Buffer): void {
    this.reserve(b.length);
    b.copy(this.buf, this.at);
    this.at += b.length;
  }
  int16(n: number): void {
    this.reserve(2);
    this.at = this.buf.writeInt16BE(n, this.at);
  }
  int32(n: number): void {
    this.reserve(4);
    this.at = this.buf.writeInt32BE(n, this.at);
  }
  /** A field's value after its length: the length is patched in once the UTF-8 bytes are written. */
  private utf8(s: string, prefix: number | undefined): void {
    this.reserve(5 + s.length * 3);
    const lengthAt = this.at;
    this.at += 4;
    if (prefix !== undefined) this.buf[this.at++] = prefix;
    this.at += this.buf.write(s, this.at, 'utf8');
    this.buf.writeInt32BE(this.at - lengthAt - 4, lengthAt);
  }
  text(s: string | null): void {
    if (s === null) this.int32(-1);
    else this.utf8(s, undefined);
  }
  /** jsonb's binary form: a version byte (1), then the JSON text. */
  jsonb(s: string | null): void {
    if (s === null) this.int32(-1);
    else this.utf8(s, 1);
  }
  uuid(s: string): void {
    this.int32(16);
    this.reserve(16);
    this.at += this.buf.write(s.replaceAll('-', ''), this.at, 'hex');
  }
  /** timestamptz: microseconds since 2000-01-01 UTC as a signed 64-bit integer (exact in a double up to 2^53). */
  timestamp(ms: number): void {
    const us = (Math.trunc(ms) - PG_EPOCH_MS) * 1000;
    const high = Math.floor(us / TWO_32);
    this.int32(8);
    this.reserve(8);
    this.buf.writeInt32BE(high, this.at);
    this.buf.writeUInt32BE(us - high * TWO_32, this.at + 4);
    this.at += 8;
  }
}
