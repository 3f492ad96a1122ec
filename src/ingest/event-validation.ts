import { v7 as uuidv7 } from 'uuid';
import { UNSTORABLE_TEXT, isStorableText } from '../graphql/unstorable-text.js';
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
/** Objects and arrays inside `properties`, counting `properties` itself as 1 (README, "Hardening"). */
export const MAX_PROPERTIES_DEPTH = 32;
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
  if (userId !== null && !isStorableText(userId)) return fail(`userId holds ${UNSTORABLE_TEXT}`);
  const sessionId = optionalText(input.sessionId, 256);
  if (sessionId === false) return fail('sessionId must be 1..256 characters');
  if (sessionId !== null && !isStorableText(sessionId)) return fail(`sessionId holds ${UNSTORABLE_TEXT}`);
  const messageId = optionalText(input.messageId, 128);
  if (messageId === false) return fail('messageId must be 1..128 characters');
  if (messageId !== null && !isStorableText(messageId)) return fail(`messageId holds ${UNSTORABLE_TEXT}`);

  let value: number | null = null;
  if (input.value !== undefined && input.value !== null) {
    if (typeof input.value !== 'number' || !Number.isFinite(input.value)) return fail('value must be a finite number');
    value = input.value;
  }

  let properties: string | null = null;
  if (input.properties !== undefined && input.properties !== null) {
    if (typeof input.properties !== 'object' || Array.isArray(input.properties))
      return fail('properties must be a JSON object');
    // Before JSON.stringify, which recurses on the native stack and would overflow on a value
    // nested thousands deep.
    const problem = propertiesProblem(input.properties);
    if (problem) return fail(problem);
    properties = JSON.stringify(input.properties);
    // UTF-8 bytes, but only counted when the UTF-16 length could exceed the limit.
    if (properties.length * 3 > MAX_PROPERTIES_BYTES && Buffer.byteLength(properties) > MAX_PROPERTIES_BYTES) {
      return fail(tooLarge());
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

/**
 * Why `properties` cannot be stored, or undefined: nested deeper than MAX_PROPERTIES_DEPTH, or a
 * key or string Postgres jsonb cannot hold. One pass with its own stack, stopping early: the size
 * limit bounds the work only after this (a 5 MiB body may hold 2 million tiny strings).
 */
function propertiesProblem(root: object): string | undefined {
  const stack: Array<{ value: unknown; depth: number }> = [{ value: root, depth: 1 }];
  let strings = 0;
  while (stack.length) {
    const { value, depth } = stack.pop()!;
    if (typeof value === 'string') {
      // Each byte counts against MAX_PROPERTIES_BYTES: past it, the size check refuses anyway.
      if (!isStorableText(value)) return `properties holds ${UNSTORABLE_TEXT}`;
      if ((strings += value.length) > MAX_PROPERTIES_BYTES) return tooLarge();
    } else if (value !== null && typeof value === 'object') {
      if (depth > MAX_PROPERTIES_DEPTH) return `properties is nested deeper than ${MAX_PROPERTIES_DEPTH} levels`;
      const entries = Array.isArray(value) ? value.map((v, i) => [String(i), v] as const) : Object.entries(value);
      if (entries.length > MAX_PROPERTIES_BYTES) return tooLarge();
      for (const [key, child] of entries) {
        if (!Array.isArray(value)) {
          if (!isStorableText(key)) return `properties holds ${UNSTORABLE_TEXT}`;
          if ((strings += key.length) > MAX_PROPERTIES_BYTES) return tooLarge();
        }
        stack.push({ value: child, depth: depth + 1 });
      }
    }
  }
  return undefined;
}

function tooLarge(): string {
  return `properties must serialize to at most ${MAX_PROPERTIES_BYTES} bytes`;
}

function optionalText(value: string | null | undefined, max: number): string | null | false {
  if (value === undefined || value === null) return null;
  return typeof value === 'string' && value.length >= 1 && value.length <= max ? value : false;
}

function fail(message: string): Normalized {
  return { ok: false, message };
}
