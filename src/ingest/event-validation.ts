import { v7 as uuidv7 } from 'uuid';
import type { StreamEvent } from './stream-event.js';

/** What a client sends for one event (EventInput), after GraphQL has coerced the scalars. */
export interface EventInputLike {
  readonly type: string;
  readonly userId?: string | null;
  readonly sessionId?: string | null;
  readonly messageId?: string | null;
  readonly timestamp?: Date | null;
  readonly value?: number | null;
  readonly properties?: unknown;
}

export interface ReceiptContext {
  readonly tenantId: string;
  /** When the request arrived, ms since the epoch. */
  readonly receivedAt: number;
  /** The client's clock when it sent the request (`sentAt`), if it said. */
  readonly sentAt?: number;
}

export type Normalized =
  { readonly ok: true; readonly event: StreamEvent } | { readonly ok: false; readonly message: string };

const TYPE = /^[A-Za-z0-9_.:-]{1,128}$/;
export const MAX_PROPERTIES_BYTES = 32 * 1024;
/** Events stamped further ahead than this are taken to come from a wrong clock (docs/contract.md). */
export const MAX_FUTURE_MS = 60 * 60 * 1000;

/**
 * Checks one event against the contract and fixes its identity: a time-ordered id (UUIDv7) and
 * its event time. Plain checks on purpose, no schema library: a 1000-event batch runs this 1000
 * times on the request path.
 */
export function normalizeEvent(input: EventInputLike, receipt: ReceiptContext): Normalized {
  if (typeof input.type !== 'string' || !TYPE.test(input.type)) {
    return fail('type must be 1..128 characters of A-Z, a-z, 0-9, "_", ".", ":" and "-"');
  }
  const userId = optionalText(input.userId, 256);
  if (userId === false) return fail('userId must be 1..256 characters');
  const sessionId = optionalText(input.sessionId, 256);
  if (sessionId === false) return fail('sessionId must be 1..256 characters');
  const messageId = optionalText(input.messageId, 128);
  if (messageId === false) return fail('messageId must be 1..128 characters');

  let value: number | null = null;
  if (input.value !== undefined && input.value !== null) {
    if (typeof input.value !== 'number' || !Number.isFinite(input.value)) return fail('value must be a finite number');
    value = input.value;
  }

  let properties: string | null = null;
  if (input.properties !== undefined && input.properties !== null) {
    if (typeof input.properties !== 'object' || Array.isArray(input.properties))
      return fail('properties must be a JSON object');
    properties = JSON.stringify(input.properties);
    // UTF-8 bytes, but only counted when the UTF-16 length could exceed the limit.
    if (properties.length * 3 > MAX_PROPERTIES_BYTES && Buffer.byteLength(properties) > MAX_PROPERTIES_BYTES) {
      return fail(`properties must serialize to at most ${MAX_PROPERTIES_BYTES} bytes`);
    }
  }

  const occurredAt = eventTime(input.timestamp, receipt);
  if (occurredAt === undefined) return fail('timestamp is not a valid date-time');

  return {
    ok: true,
    event: {
      tenantId: receipt.tenantId,
      // The id carries the event time (UUIDv7's 48-bit millisecond field), so event(id) finds its
      // day's partition without an index on id.
      id: uuidv7({ msecs: occurredAt }),
      type: input.type,
      userId,
      sessionId,
      messageId,
      occurredAt,
      receivedAt: receipt.receivedAt,
      value,
      properties,
    },
  };
}

/**
 * The event time: the client's timestamp corrected for its clock skew when it sent `sentAt`
 * (timestamp = receivedAt − (sentAt − timestamp), as Segment and PostHog do), the receipt time
 * when it sent none, and the receipt time again when it claims to be over an hour in the future.
 */
export function eventTime(timestamp: Date | null | undefined, receipt: ReceiptContext): number | undefined {
  if (timestamp === undefined || timestamp === null) return receipt.receivedAt;
  const t = timestamp.getTime();
  if (!Number.isFinite(t)) return undefined;
  const corrected = receipt.sentAt === undefined ? t : receipt.receivedAt - (receipt.sentAt - t);
  if (corrected < 0) return undefined;
  return corrected > receipt.receivedAt + MAX_FUTURE_MS ? receipt.receivedAt : corrected;
}

function optionalText(value: string | null | undefined, max: number): string | null | false {
  if (value === undefined || value === null) return null;
  return typeof value === 'string' && value.length >= 1 && value.length <= max ? value : false;
}

function fail(message: string): Normalized {
  return { ok: false, message };
}
