import { randomBytes } from 'node:crypto';

/**
 * An operation's `data` that is already JSON text (a whole-response cache hit,
 * plugins/response-cache.plugin.ts). Apollo serializes the response itself, so the answer carries
 * a one-field placeholder object instead, and the HTTP route puts the text in its place once the
 * response is a string (http/graphql.route.ts): the stored text is neither parsed nor
 * re-serialized per request (for a 168-point `timeseries`, ~22 KB, that was most of a hit's CPU).
 */
export interface SerializedData {
  /** What the response's `data` holds until it is sent. */
  readonly placeholder: Readonly<Record<string, string>>;
  /** The placeholder as JSON.stringify writes it: what the route replaces. */
  readonly marker: string;
  readonly json: string;
}

/** A field name no schema field can have (`__` is reserved), and a per-process nonce in the value. */
const FIELD = '__serializedData';
const NONCE = randomBytes(12).toString('base64url');
let sequence = 0;

export function serializedData(json: string): SerializedData {
  const placeholder = { [FIELD]: `${NONCE}.${++sequence}` };
  return { placeholder, marker: JSON.stringify(placeholder), json };
}

/** The response text with each placeholder replaced by its data (each appears once, if at all). */
export function spliceSerializedData(payload: string, pieces: readonly SerializedData[]): string {
  let out = payload;
  for (const piece of pieces) {
    const at = out.indexOf(piece.marker);
    if (at >= 0) out = out.slice(0, at) + piece.json + out.slice(at + piece.marker.length);
  }
  return out;
}
