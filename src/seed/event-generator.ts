/**
 * Synthetic analytics events for `npm run seed` (src/seed/seed-events.ts loads them).
 *
 * Pure and deterministic: the same options give the same events, byte for byte. Each UTC day has
 * a PRNG of its own, seeded from (seed, day), so days are generated independently, in any order
 * and concurrently, and a test can regenerate one day to compare with what the database holds.
 *
 * The shape of the data:
 * - users: events / 100 of them, activity Zipf-distributed (exponent 1.1, inverse-CDF table and a
 *   binary search), so a few users produce a large share of the events; ranks are shuffled over
 *   the ids so `u0` is not always the busiest;
 * - sessions: a user's events come in sessions (mean 7 events, gaps of minutes, never 30 min or
 *   more), ids `s_<user>_<n>`; 5% of sessions are anonymous (`user_id` null, `s_anon_<n>`);
 *   api_call events come in bursts a backend sends for a user, seconds apart, with no session;
 * - twelve event types with skewed weights; `value` with long tails where it means something
 *   (purchase and add_to_cart amounts log-normal, api_call latency log-normal with a Pareto tail,
 *   video_play seconds log-normal), null for the others; small `properties` JSON for some types;
 * - time: the `days` before `now`, with a diurnal cycle, a weekend dip and mild growth; rows of a
 *   day come out sorted by time, which keeps inserts into the (tenant_id, occurred_at, id)
 *   primary key append-only.
 *
 * `DayEvents.copyChunks` writes COPY binary or text format straight into Buffers of a few MB,
 * with no string or object per row: at 200k rows/s Node shares two cores with the Postgres
 * backends, so every microsecond it spends on a row is taken from them.
 */

import { EVENT_COPY_COLUMNS } from '../ingest/event-copy.js';

const DAY_MS = 86_400_000;
const MINUTE_MS = 60_000;
const MINUTES_PER_DAY = 1_440;
/** Sort keys are msOfDay * 2^26 + index: exact in a double while a day has < 2^26 events. */
const INDEX_BITS = 2 ** 26;

export const EVENT_TYPES = [
  'page_view',
  'click',
  'api_call',
  'search',
  'video_play',
  'login',
  'add_to_cart',
  'logout',
  'error',
  'share',
  'purchase',
  'signup',
] as const;
export type SeedEventType = (typeof EVENT_TYPES)[number];

const T = Object.fromEntries(EVENT_TYPES.map((type, i) => [type, i])) as Record<SeedEventType, number>;
/**
 * Relative frequency of each type inside a session (the first and last events of a session are
 * drawn apart; api_call events come from sessionless bursts, about a tenth of all events).
 */
const TYPE_WEIGHTS: Record<SeedEventType, number> = {
  page_view: 34,
  click: 20,
  api_call: 0,
  search: 7,
  video_play: 5,
  login: 3,
  add_to_cart: 4,
  logout: 2,
  error: 3,
  share: 1.5,
  purchase: 1.2,
  signup: 0.5,
};
/** Decimals written for `value` (amounts in cents, latency in tenths of ms, whole seconds). */
const VALUE_DECIMALS: Partial<Record<SeedEventType, number>> = {
  purchase: 2,
  add_to_cart: 2,
  api_call: 1,
  video_play: 0,
};

/** Property variants per type, most frequent first (picked with a skew towards the first). */
const PROPERTIES: Partial<Record<SeedEventType, readonly object[]>> = {
  page_view: [
    '/',
    '/pricing',
    '/docs',
    '/features',
    '/blog/launch-week',
    '/docs/api',
    '/dashboard',
    '/settings',
    '/changelog',
    '/docs/sdk/javascript',
    '/careers',
    '/legal/privacy',
  ].map((path) => ({ path })),
  search: [
    'pricing',
    'api key',
    'export csv',
    '"rate limit"',
    'webhooks',
    'sso',
    'C:\\Users\\report.xlsx',
    'retention\tpolicy',
    'delete account',
  ].map((query) => ({ query })),
  video_play: ['intro', 'onboarding', 'dashboards-101', 'webinar-2024'].map((video, i) => ({
    video,
    quality: ['1080p', '720p', '480p'][i % 3],
  })),
  add_to_cart: ['SKU-1001', 'SKU-1042', 'SKU-2210', 'SKU-3300', 'SKU-0007'].map((sku) => ({ sku })),
  purchase: [
    { currency: 'USD', plan: 'pro' },
    { currency: 'EUR', plan: 'pro' },
    { currency: 'USD', plan: 'team' },
    { currency: 'GBP', plan: 'starter' },
    { currency: 'USD', plan: 'enterprise' },
  ],
  api_call: [
    { endpoint: 'GET /v1/events', status: 200 },
    { endpoint: 'POST /v1/events', status: 202 },
    { endpoint: 'GET /v1/users', status: 200 },
    { endpoint: 'GET /v1/events', status: 429 },
    { endpoint: 'POST /v1/events', status: 500 },
  ],
  error: [
    { code: 'E_TIMEOUT', message: 'upstream timed out\nretrying in 2s' },
    { code: 'E_VALIDATION', message: 'field "email" is required' },
    { code: 'E_NETWORK', message: 'fetch failed' },
    { code: 'E_INTERNAL', message: 'at handler (C:\\app\\src\\index.js:12:7)\r\n' },
  ],
  signup: ['google', 'direct', 'newsletter', 'twitter'].map((referrer) => ({ referrer, plan: 'free' })),
  login: ['password', 'sso', 'magic_link'].map((method) => ({ method })),
  share: ['twitter', 'linkedin', 'email', 'slack'].map((channel) => ({ channel })),
};

/**
 * The events table's columns, in the order `copyChunks` writes them: the same list the persister
 * COPies (src/ingest/event-copy.ts), so seeded and ingested rows follow one column order.
 */
export const COPY_COLUMNS = EVENT_COPY_COLUMNS;

/**
 * COPY text format: backslash, and the characters that would end a field or a row, escaped.
 * NUL cannot be stored in text at all; Postgres would reject the row, so it is refused here.
 */
export function escapeCopyText(value: string): string {
  if (value.includes('\0')) throw new Error('COPY text cannot carry NUL characters');
  return value.replace(/[\\\t\n\r]/g, (c) => COPY_ESCAPES[c]!);
}
const COPY_ESCAPES: Record<string, string> = { '\\': '\\\\', '\t': '\\t', '\n': '\\n', '\r': '\\r' };

/** One generated event, as the events table holds it (the test-facing, per-row form). */
export interface SeedEvent {
  readonly tenantId: string;
  readonly id: string;
  readonly type: SeedEventType;
  readonly userId: string | null;
  readonly sessionId: string | null;
  readonly messageId: null;
  /** Epoch ms. */
  readonly occurredAt: number;
  readonly receivedAt: number;
  readonly value: number | null;
  /** JSON text. */
  readonly properties: string | null;
}

export interface EventGeneratorOptions {
  readonly tenantId: string;
  /** Events over the whole window. */
  readonly events: number;
  /** Length of the window ending at `now`, in days. Default 90. */
  readonly days?: number;
  /** End of the window (exclusive). Default: the current time. */
  readonly now?: Date | number;
  /** Default 1. */
  readonly seed?: number;
}

/** The events of one UTC day inside the window: [from, to) is that day cut to the window. */
export interface SeedDay {
  readonly index: number;
  /** Midnight UTC, epoch ms. */
  readonly start: number;
  readonly from: number;
  readonly to: number;
  readonly events: number;
  /** `events_YYYYMMDD`, the daily partition (migrations/1763769600000_foundation.sql). */
  readonly partition: string;
}

/**
 * 32-bit sfc32 (Chris Doty-Humphrey's small fast chaotic PRNG): 4 words of state, passes
 * PractRand to large sizes, and stays in int32 arithmetic that V8 compiles well.
 */
export class Prng {
  private a: number;
  private b: number;
  private c: number;
  private d: number;

  constructor(...seeds: number[]) {
    // splitmix32 over the seeds spreads small, similar seeds (1, 2, day 0, day 1) apart.
    let h = 0x9e3779b9;
    const mix = (x: number) => {
      h = (h + x + 0x9e3779b9) | 0;
      let z = h;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
      return (z ^ (z >>> 16)) >>> 0;
    };
    for (const s of seeds) {
      mix(s >>> 0);
      mix(Math.floor(s / 2 ** 32) >>> 0);
    }
    this.a = mix(1);
    this.b = mix(2);
    this.c = mix(3);
    this.d = mix(4);
    for (let i = 0; i < 12; i++) this.u32();
  }

  u32(): number {
    const t = (((this.a + this.b) | 0) + this.d) | 0;
    this.d = (this.d + 1) | 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) | 0;
    this.c = (this.c << 21) | (this.c >>> 11);
    this.c = (this.c + t) | 0;
    return t >>> 0;
  }

  /** Uniform in [0, 1). */
  next(): number {
    return this.u32() / 4_294_967_296;
  }

  /** Exponential with this mean. */
  exponential(mean: number): number {
    return -Math.log(1 - this.next()) * mean;
  }

  /** Log-normal with this median and shape (Box-Muller; one normal per call). */
  logNormal(median: number, sigma: number): number {
    const normal = Math.sqrt(-2 * Math.log(1 - this.next())) * Math.cos(2 * Math.PI * this.next());
    return median * Math.exp(sigma * normal);
  }
}

/** Rate of events at `t` relative to the rest of the window (diurnal cycle, weekends, growth). */
function rate(t: number, from: number, to: number): number {
  const hour = (t % DAY_MS) / 3_600_000;
  const diurnal = 1 + 0.55 * Math.cos((2 * Math.PI * (hour - 15)) / 24) + 0.1 * Math.cos((4 * Math.PI * hour) / 24);
  const weekday = (Math.floor(t / DAY_MS) + 4) % 7; // 1970-01-01 was a Thursday
  const weekly = weekday === 0 || weekday === 6 ? 0.75 : 1;
  const growth = 1 + (0.35 * (t - from)) / Math.max(1, to - from);
  return diurnal * weekly * growth;
}

/** Per-minute weights of one day cut to [from, to): cumulative, with each minute's bounds. */
function minuteTable(start: number, from: number, to: number) {
  const cdf = new Float64Array(MINUTES_PER_DAY);
  const lo = new Float64Array(MINUTES_PER_DAY);
  const hi = new Float64Array(MINUTES_PER_DAY);
  let total = 0;
  for (let m = 0; m < MINUTES_PER_DAY; m++) {
    const a = Math.max(start + m * MINUTE_MS, from);
    const b = Math.min(start + (m + 1) * MINUTE_MS, to);
    lo[m] = a;
    hi[m] = Math.max(a, b);
    if (b > a) total += rate((a + b) / 2, from, to) * (b - a);
    cdf[m] = total;
  }
  return { cdf, lo, hi, total };
}

/** First index whose cumulative value exceeds `x` (the inverse CDF of a table). */
function search(cdf: Float64Array, x: number): number {
  let lo = 0;
  let hi = cdf.length - 1;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (cdf[mid]! > x) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}

function utcDayName(ms: number): string {
  return new Date(ms).toISOString().slice(0, 10).replaceAll('-', '');
}

/**
 * The plan of a seed: the window, the users and how many events fall on each day. Cheap to
 * build (a few ms per million users); `generateDay` does the work, one day at a time.
 */
export class EventGenerator {
  readonly tenantId: string;
  readonly seed: number;
  readonly from: Date;
  readonly to: Date;
  readonly users: number;
  readonly days: readonly SeedDay[];
  /** Zipf CDF over user ranks (rank 0 busiest). */
  private readonly zipf: Float64Array;
  /** Rank -> user number: the ranks are shuffled over the ids. */
  private readonly userOfRank: Int32Array;
  /** Session numbers of day i are i * sessionStride + k: unique over the seed. */
  private readonly sessionStride: number;
  private readonly typeCdf: Float64Array;
  private readonly properties: PropertyTable;
  /** The tenant id as COPY text writes it, and as binary does (16 bytes). */
  private readonly tenant: TenantBytes;

  constructor(options: EventGeneratorOptions) {
    const { tenantId, events, days = 90, seed = 1 } = options;
    if (!Number.isSafeInteger(events) || events < 0) throw new RangeError('events must be a whole number >= 0');
    if (!(days > 0)) throw new RangeError('days must be > 0');
    if (!/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(tenantId)) {
      throw new RangeError('tenantId must be a UUID');
    }
    this.tenantId = tenantId.toLowerCase();
    this.tenant = {
      text: Buffer.from(this.tenantId, 'latin1'),
      binary: Buffer.from(this.tenantId.replaceAll('-', ''), 'hex'),
    };
    this.seed = seed;
    const to = Math.floor(options.now === undefined ? Date.now() : +options.now);
    const from = to - Math.round(days * DAY_MS);
    this.from = new Date(from);
    this.to = new Date(to);

    // Days and their shares of the events: largest remainder, so the counts add up exactly.
    const planned: { start: number; from: number; to: number; weight: number }[] = [];
    for (let start = from - (from % DAY_MS); start < to; start += DAY_MS) {
      const dayFrom = Math.max(start, from);
      const dayTo = Math.min(start + DAY_MS, to);
      planned.push({ start, from: dayFrom, to: dayTo, weight: minuteTable(start, from, to).total });
    }
    const totalWeight = planned.reduce((sum, d) => sum + d.weight, 0);
    const exact = planned.map((d) => (events * d.weight) / totalWeight);
    const counts = exact.map(Math.floor);
    let left = events - counts.reduce((a, b) => a + b, 0);
    const byRemainder = exact.map((x, i) => ({ i, r: x - Math.floor(x) })).sort((a, b) => b.r - a.r || a.i - b.i);
    for (const { i } of byRemainder) {
      if (left-- <= 0) break;
      counts[i]!++;
    }
    this.days = planned.map((d, index) => {
      if (counts[index]! >= INDEX_BITS) throw new RangeError(`over ${INDEX_BITS} events in one day`);
      return {
        index,
        start: d.start,
        from: d.from,
        to: d.to,
        events: counts[index]!,
        partition: `events_${utcDayName(d.start)}`,
      };
    });
    this.sessionStride = Math.max(1, ...counts);

    this.users = Math.max(1, Math.round(events / 100));
    this.zipf = new Float64Array(this.users);
    let sum = 0;
    for (let k = 0; k < this.users; k++) this.zipf[k] = sum += (k + 1) ** -1.1;
    for (let k = 0; k < this.users; k++) this.zipf[k]! /= sum;
    this.userOfRank = new Int32Array(this.users);
    for (let k = 0; k < this.users; k++) this.userOfRank[k] = k;
    const shuffle = new Prng(seed, 0x75736572); // "user"
    for (let k = this.users - 1; k > 0; k--) {
      const j = Math.floor(shuffle.next() * (k + 1));
      const tmp = this.userOfRank[k]!;
      this.userOfRank[k] = this.userOfRank[j]!;
      this.userOfRank[j] = tmp;
    }

    this.typeCdf = new Float64Array(EVENT_TYPES.length);
    let typeSum = 0;
    EVENT_TYPES.forEach((type, i) => (this.typeCdf[i] = typeSum += TYPE_WEIGHTS[type]));
    for (let i = 0; i < this.typeCdf.length; i++) this.typeCdf[i]! /= typeSum;
    this.properties = buildPropertyTable();
  }

  get events(): number {
    return this.days.reduce((sum, d) => sum + d.events, 0);
  }

  /** The events of day `index`, sorted by time. */
  generateDay(index: number): DayEvents {
    const day = this.days[index];
    if (!day) throw new RangeError(`no day ${index}`);
    const rng = new Prng(this.seed, 0x64617973, index); // "days"
    const n = day.events;
    const occurred = new Float64Array(n);
    const received = new Float64Array(n);
    const type = new Uint8Array(n);
    const user = new Int32Array(n);
    const session = new Float64Array(n);
    const value = new Float64Array(n);
    const property = new Int16Array(n);
    const idBits = new Uint32Array(n * 3);
    const minutes = minuteTable(day.start, this.from.getTime(), this.to.getTime());
    const gaps = new Float64Array(MAX_SESSION_EVENTS);
    const props = this.properties;

    let k = 0;
    let sessionNumber = index * this.sessionStride;
    while (k < n) {
      // Session length: 1 + geometric with mean 6, capped.
      let length = 1 + Math.floor(Math.log(1 - rng.next()) / Math.log(1 - 1 / 7));
      length = Math.min(length, MAX_SESSION_EVENTS, n - k);
      // A tenth are a backend's API calls on a user's behalf, seconds apart and outside any session.
      const api = rng.next() < 0.1;
      const anonymous = !api && rng.next() < 0.05;
      const userNumber = anonymous ? -1 : this.userOfRank[search(this.zipf, rng.next())]!;
      // Session gaps of minutes (mean 4), each under the 30-minute inactivity that ends a session.
      let span = 0;
      for (let e = 0; e < length; e++) {
        if (e > 0) span += Math.min(Math.floor(rng.exponential(api ? 5_000 : 240_000)), 1_799_000);
        gaps[e] = span;
      }
      const minute = search(minutes.cdf, rng.next() * minutes.total);
      const lo = minutes.lo[minute]!;
      let start = lo + Math.floor(rng.next() * (minutes.hi[minute]! - lo));
      // A session running past the day's end starts earlier instead (rows stay in their day).
      start = Math.max(day.from, Math.min(start, day.to - 1 - span));
      for (let e = 0; e < length; e++, k++) {
        const t = Math.min(start + gaps[e]!, day.to - 1);
        occurred[k] = t;
        let ty: number;
        if (api) {
          ty = T.api_call;
        } else if (e === 0) {
          const u = rng.next();
          ty = anonymous || u < 0.7 ? T.page_view : u < 0.95 ? T.login : T.signup;
        } else if (e === length - 1 && length >= 3 && !anonymous && rng.next() < 0.3) {
          ty = T.logout;
        } else {
          ty = search(this.typeCdf, rng.next());
        }
        type[k] = ty;
        user[k] = userNumber;
        session[k] = api ? -1 : sessionNumber;
        value[k] = drawValue(rng, ty);
        const variants = props.byType[ty]!;
        // Skewed towards the first variants: u^2 picks index 0 most often.
        property[k] = variants.length ? variants[Math.floor(rng.next() ** 2 * variants.length)]! : -1;
        // Delivery delay: tens to hundreds of ms, and 1% sent later by clients that were offline.
        let delay = 20 + Math.floor(rng.exponential(250));
        if (rng.next() < 0.01) delay += Math.floor(rng.next() * 6 * 3_600_000);
        received[k] = Math.max(t, Math.min(t + delay, this.to.getTime()));
        idBits[3 * k] = rng.u32();
        idBits[3 * k + 1] = rng.u32();
        idBits[3 * k + 2] = rng.u32();
      }
      if (!api) sessionNumber++;
    }

    // Sort by time (the index breaks ties and keeps the sort deterministic).
    const keys = new Float64Array(n);
    for (let i = 0; i < n; i++) keys[i] = (occurred[i]! - day.start) * INDEX_BITS + i;
    keys.sort();
    const order = new Int32Array(n);
    for (let i = 0; i < n; i++) order[i] = keys[i]! % INDEX_BITS;
    monotonicIds(order, occurred, idBits);

    return new DayEvents(this.tenantId, this.tenant, day, props, {
      order,
      occurred,
      received,
      type,
      user,
      session,
      value,
      property,
      idBits,
    });
  }
}

const MAX_SESSION_EVENTS = 200;

/**
 * Makes ids of rows in the same millisecond increase in time order (as `uuid`'s v7 does with
 * its counter), by raising any that is not above its predecessor to the predecessor + 1. Rows
 * then arrive in exact primary-key order, and Postgres's sort for the key's index build finds
 * them presorted. The 74 random bits compare as rand_a (12), rand_b's top 14, then 16 + 32.
 */
function monotonicIds(order: Int32Array, occurred: Float64Array, bits: Uint32Array): void {
  for (let p = 1; p < order.length; p++) {
    const i = order[p]!;
    const prev = order[p - 1]!;
    if (occurred[i] !== occurred[prev]) continue;
    const a = [bits[3 * i]! & 0x3ffffff, bits[3 * i + 1]! & 0xffff, bits[3 * i + 2]!];
    const b = [bits[3 * prev]! & 0x3ffffff, bits[3 * prev + 1]! & 0xffff, bits[3 * prev + 2]!];
    const key = (w: number[]) => [w[0]! & 0xfff, w[0]! >>> 12, w[1]!, w[2]!];
    const ka = key(a);
    const kb = key(b);
    let cmp = 0;
    for (let k = 0; k < 4 && cmp === 0; k++) cmp = ka[k]! - kb[k]!;
    if (cmp > 0) continue;
    // Predecessor + 1, carrying from the last 32 bits up through the 16, 14 and 12.
    const limits = [0x1000, 0x4000, 0x10000, 0x100000000];
    for (let k = 3; k >= 0; k--) {
      kb[k] = kb[k]! + 1;
      if (kb[k]! < limits[k]!) break;
      kb[k] = 0;
    }
    bits[3 * i] = kb[0]! | (kb[1]! << 12);
    bits[3 * i + 1] = kb[2]!;
    bits[3 * i + 2] = kb[3]! >>> 0;
  }
}

/** Scaled integer value (e.g. cents), or NaN for null. */
function drawValue(rng: Prng, type: number): number {
  switch (type) {
    case T.purchase:
      return Math.max(99, Math.round(rng.logNormal(3_500, 1.0)));
    case T.add_to_cart:
      return Math.max(99, Math.round(rng.logNormal(2_500, 0.9)));
    case T.api_call: {
      // Mostly tens of ms; 3% Pareto tail (alpha 1.5 from 250 ms) capped by a 30 s timeout.
      const ms = rng.next() < 0.03 ? 250 * (1 - rng.next()) ** (-1 / 1.5) : rng.logNormal(45, 0.5);
      return Math.max(1, Math.min(300_000, Math.round(ms * 10)));
    }
    case T.video_play:
      return Math.min(4 * 3_600, Math.max(1, Math.round(rng.logNormal(45, 1.2))));
    default:
      return NaN;
  }
}

interface PropertyTable {
  /** Per type, the indexes into `json` of its variants (empty: no properties). */
  readonly byType: readonly (readonly number[])[];
  readonly json: readonly string[];
  /** COPY-escaped bytes of each `json`. */
  readonly copy: readonly Buffer[];
  /** jsonb binary input: version 1, then the JSON. */
  readonly jsonb: readonly Buffer[];
}

function buildPropertyTable(): PropertyTable {
  const json: string[] = [];
  const byType = EVENT_TYPES.map((type) =>
    (PROPERTIES[type] ?? []).map((variant) => json.push(JSON.stringify(variant)) - 1),
  );
  const copy = json.map((j) => Buffer.from(escapeCopyText(j), 'utf8'));
  // copyChunks leaves ROW_RESERVE bytes for the row that crosses a chunk's size.
  if (copy.some((b) => b.length > 512)) throw new Error('property variants must stay under 512 bytes');
  return {
    byType,
    json,
    copy,
    jsonb: json.map((j) => Buffer.concat([Buffer.from([1]), Buffer.from(j, 'utf8')])),
  };
}

interface TenantBytes {
  readonly text: Buffer;
  readonly binary: Buffer;
}

interface DayColumns {
  /** Row indexes in time order. */
  readonly order: Int32Array;
  readonly occurred: Float64Array;
  readonly received: Float64Array;
  readonly type: Uint8Array;
  /** -1: anonymous. */
  readonly user: Int32Array;
  /** -1: no session. */
  readonly session: Float64Array;
  /** Scaled by 10^VALUE_DECIMALS; NaN: null. */
  readonly value: Float64Array;
  /** Index into the property table; -1: null. */
  readonly property: Int16Array;
  /** 3 random words per row for the UUIDv7. */
  readonly idBits: Uint32Array;
}

const TYPE_BYTES = EVENT_TYPES.map((t) => Buffer.from(t, 'latin1'));
const DECIMALS = EVENT_TYPES.map((t) => VALUE_DECIMALS[t] ?? 0);
const HEX = Buffer.from('0123456789abcdef', 'latin1');
const TAB = 9;
const NEWLINE = 10;
const BACKSLASH = 92;
const LETTER_N = 78;
/** Room for one row past a chunk's size: the fixed columns take < 250 bytes, plus its properties. */
const ROW_RESERVE = 1_024;

const ID_SCRATCH = Buffer.alloc(36);

/** One UTC day of events in time order: COPY chunks for loading, per-row objects for checking. */
export class DayEvents {
  readonly length: number;

  constructor(
    readonly tenantId: string,
    private readonly tenant: TenantBytes,
    readonly day: SeedDay,
    private readonly properties: PropertyTable,
    private readonly columns: DayColumns,
  ) {
    this.length = columns.order.length;
  }

  /** The `position`-th event of the day in time order. */
  event(position: number): SeedEvent {
    const c = this.columns;
    const i = c.order[position];
    if (i === undefined) throw new RangeError(`no event ${position}`);
    const type = c.type[i]!;
    const userNumber = c.user[i]!;
    const session = c.session[i]!;
    const value = c.value[i]!;
    const property = c.property[i]!;
    writeUuidV7(ID_SCRATCH, 0, c.occurred[i]!, c.idBits, i);
    return {
      tenantId: this.tenantId,
      id: ID_SCRATCH.toString('latin1'),
      type: EVENT_TYPES[type]!,
      userId: userNumber < 0 ? null : `u${userNumber}`,
      sessionId: session < 0 ? null : userNumber < 0 ? `s_anon_${session}` : `s_u${userNumber}_${session}`,
      messageId: null,
      occurredAt: c.occurred[i]!,
      receivedAt: c.received[i]!,
      value: Number.isNaN(value) ? null : value / 10 ** DECIMALS[type]!,
      properties: property < 0 ? null : this.properties.json[property]!,
    };
  }

  *events(): Generator<SeedEvent> {
    for (let p = 0; p < this.length; p++) yield this.event(p);
  }

  /**
   * The day's rows for `COPY <partition> (COPY_COLUMNS) FROM STDIN`, in Buffers of a little over
   * `chunkBytes` each that end on a row boundary (binary: the first carries the header, the last
   * the trailer). Each Buffer is fresh: a consumer may hold on to it.
   */
  *copyChunks({ format = 'binary', chunkBytes = 2 * 1024 * 1024 }: CopyChunkOptions = {}): Generator<CopyChunk> {
    const encode = format === 'binary' ? encodeBinaryRows : encodeTextRows;
    let p = 0;
    do {
      const buf = Buffer.allocUnsafe(chunkBytes + ROW_RESERVE);
      let start = 0;
      if (format === 'binary' && p === 0) start = writeBytes(buf, 0, BINARY_HEADER);
      const end = encode(this.tenant[format], this.properties, this.columns, p, buf, start, chunkBytes);
      let bytes = end.bytes;
      if (format === 'binary' && end.position === this.length) {
        buf[bytes++] = 0xff; // trailer: a field count of -1
        buf[bytes++] = 0xff;
      }
      yield { data: buf.subarray(0, bytes), rows: end.position - p };
      p = end.position;
    } while (p < this.length);
  }
}

export interface CopyChunkOptions {
  /** COPY format. Default binary: about half the parsing work for Postgres, and less for Node. */
  readonly format?: 'text' | 'binary';
  /** Default 2 MiB. */
  readonly chunkBytes?: number;
}

export interface CopyChunk {
  readonly data: Buffer;
  readonly rows: number;
}

/** Rows from time position `from` on, until `buf` holds `chunkBytes` or the day ends. */
type RowEncoder = (
  tenant: Buffer,
  properties: PropertyTable,
  columns: DayColumns,
  from: number,
  buf: Buffer,
  pos: number,
  chunkBytes: number,
) => { position: number; bytes: number };

/** COPY text format. The encoders are plain functions, apart from the generator, for the optimizer. */
const encodeTextRows: RowEncoder = (tenant, properties, columns, from, buf, pos, chunkBytes) => {
  const propertyBytes = properties.copy;
  const { order, occurred, received, type, user, session, value, property, idBits } = columns;
  const occurredDate = new DateWriter();
  const receivedDate = new DateWriter();
  const length = order.length;
  let p = from;
  while (p < length && pos < chunkBytes) {
    const i = order[p++]!;
    const t = occurred[i]!;
    pos = writeBytes(buf, pos, tenant);
    buf[pos++] = TAB;
    pos = writeUuidV7(buf, pos, t, idBits, i);
    buf[pos++] = TAB;
    const ty = type[i]!;
    pos = writeBytes(buf, pos, TYPE_BYTES[ty]!);
    buf[pos++] = TAB;
    const u = user[i]!;
    if (u < 0) pos = writeNull(buf, pos);
    else {
      buf[pos++] = 117; // u
      pos = writeUint(buf, pos, u);
    }
    buf[pos++] = TAB;
    const s = session[i]!;
    if (s < 0) pos = writeNull(buf, pos);
    else {
      buf[pos++] = 115; // s
      buf[pos++] = 95; // _
      if (u < 0) pos = writeBytes(buf, pos, ANON);
      else {
        buf[pos++] = 117;
        pos = writeUint(buf, pos, u);
      }
      buf[pos++] = 95;
      pos = writeUint(buf, pos, s);
    }
    buf[pos++] = TAB;
    pos = writeNull(buf, pos); // message_id
    buf[pos++] = TAB;
    pos = occurredDate.write(buf, pos, t);
    buf[pos++] = TAB;
    pos = receivedDate.write(buf, pos, received[i]!);
    buf[pos++] = TAB;
    const v = value[i]!;
    if (v !== v)
      pos = writeNull(buf, pos); // NaN
    else pos = writeScaled(buf, pos, v, DECIMALS[ty]!);
    buf[pos++] = TAB;
    const prop = property[i]!;
    if (prop < 0) pos = writeNull(buf, pos);
    else pos = writeBytes(buf, pos, propertyBytes[prop]!);
    buf[pos++] = NEWLINE;
  }
  return { position: p, bytes: pos };
};

/** Microseconds from the Unix epoch to Postgres's (2000-01-01). */
const PG_EPOCH_MS = 946_684_800_000;
const BINARY_HEADER = Buffer.from('PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0', 'latin1');

/**
 * COPY binary format: per row a field count, then per field its length (-1: null) and its
 * value in the type's binary form: uuid 16 bytes, timestamptz int64 microseconds since 2000,
 * float8 IEEE big-endian, text as is, jsonb a version byte (1) and the JSON text.
 */
const encodeBinaryRows: RowEncoder = (tenant, properties, columns, from, buf, pos, chunkBytes) => {
  const { order, occurred, received, type, user, session, value, property, idBits } = columns;
  const json = properties.jsonb;
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const length = order.length;
  let p = from;
  while (p < length && pos < chunkBytes) {
    const i = order[p++]!;
    const t = occurred[i]!;
    view.setInt16(pos, COPY_COLUMNS.length);
    view.setInt32(pos + 2, 16);
    pos = writeBytes(buf, pos + 6, tenant);
    view.setInt32(pos, 16);
    const hi = Math.floor(t / 4_294_967_296);
    const w0 = idBits[3 * i]!;
    view.setUint16(pos + 4, hi);
    view.setUint32(pos + 6, t >>> 0);
    view.setUint16(pos + 10, 0x7000 | (w0 & 0xfff));
    view.setUint16(pos + 12, 0x8000 | ((w0 >>> 12) & 0x3fff));
    view.setUint16(pos + 14, idBits[3 * i + 1]! & 0xffff);
    view.setUint32(pos + 16, idBits[3 * i + 2]!);
    pos += 20;
    const ty = type[i]!;
    const typeBytes = TYPE_BYTES[ty]!;
    view.setInt32(pos, typeBytes.length);
    pos = writeBytes(buf, pos + 4, typeBytes);
    const u = user[i]!;
    if (u < 0) pos = writeNullField(view, pos);
    else {
      const at = pos;
      buf[pos + 4] = 117; // u
      pos = writeUint(buf, pos + 5, u);
      view.setInt32(at, pos - at - 4);
    }
    const s = session[i]!;
    if (s < 0) pos = writeNullField(view, pos);
    else {
      const at = pos;
      buf[pos + 4] = 115; // s
      buf[pos + 5] = 95; // _
      pos += 6;
      if (u < 0) pos = writeBytes(buf, pos, ANON);
      else {
        buf[pos++] = 117;
        pos = writeUint(buf, pos, u);
      }
      buf[pos++] = 95;
      pos = writeUint(buf, pos, s);
      view.setInt32(at, pos - at - 4);
    }
    pos = writeNullField(view, pos); // message_id
    pos = writeTimestamp(view, pos, t);
    pos = writeTimestamp(view, pos, received[i]!);
    const v = value[i]!;
    if (v !== v)
      pos = writeNullField(view, pos); // NaN
    else {
      view.setInt32(pos, 8);
      view.setFloat64(pos + 4, v / POWERS_OF_TEN[DECIMALS[ty]!]!);
      pos += 12;
    }
    const prop = property[i]!;
    if (prop < 0) pos = writeNullField(view, pos);
    else {
      const bytes = json[prop]!;
      view.setInt32(pos, bytes.length);
      pos = writeBytes(buf, pos + 4, bytes);
    }
  }
  return { position: p, bytes: pos };
};

function writeNullField(view: DataView, pos: number): number {
  view.setInt32(pos, -1);
  return pos + 4;
}

/** Length 8, then int64 microseconds since 2000-01-01 UTC (written as two 32-bit halves). */
function writeTimestamp(view: DataView, pos: number, ms: number): number {
  const micros = (ms - PG_EPOCH_MS) * 1000;
  const hi = Math.floor(micros / 4_294_967_296);
  view.setInt32(pos, 8);
  view.setInt32(pos + 4, hi);
  view.setUint32(pos + 8, micros - hi * 4_294_967_296);
  return pos + 12;
}

// The writers below take and return the write position. They stay in int32 arithmetic where
// they can (a double % or / compiles to a slow path) and copy short byte strings by hand:
// Buffer#copy crosses into C++ per call, which costs more than the few bytes it moves.

const ANON = Buffer.from('anon', 'latin1');

function writeBytes(buf: Buffer, pos: number, bytes: Uint8Array): number {
  const n = bytes.length;
  for (let k = 0; k < n; k++) buf[pos + k] = bytes[k]!;
  return pos + n;
}

function writeNull(buf: Buffer, pos: number): number {
  buf[pos] = BACKSLASH;
  buf[pos + 1] = LETTER_N;
  return pos + 2;
}

/** Decimal digits of a whole number >= 0 (< 2^53). */
function writeUint(buf: Buffer, pos: number, n: number): number {
  if (n > 0x7fffffff) {
    const high = Math.floor(n / 1e9);
    pos = writeUint(buf, pos, high);
    return writePadded(buf, pos, n - high * 1e9, 9);
  }
  let x = n | 0;
  let digits = 1;
  for (let y = x; y >= 10; y = (y / 10) | 0) digits++;
  const end = pos + digits;
  for (let k = end - 1; k >= pos; k--) {
    const q = (x / 10) | 0;
    buf[k] = 48 + x - q * 10;
    x = q;
  }
  return end;
}

/** Exactly `digits` decimal digits of `n` (int32), zero-padded. */
function writePadded(buf: Buffer, pos: number, n: number, digits: number): number {
  let x = n | 0;
  for (let k = pos + digits - 1; k >= pos; k--) {
    const q = (x / 10) | 0;
    buf[k] = 48 + x - q * 10;
    x = q;
  }
  return pos + digits;
}

/** `scaled / 10^decimals` written exactly, e.g. 1250 with 2 decimals as 12.50. */
function writeScaled(buf: Buffer, pos: number, scaled: number, decimals: number): number {
  if (decimals === 0) return writeUint(buf, pos, scaled);
  const unit = POWERS_OF_TEN[decimals]!;
  const whole = Math.floor(scaled / unit);
  pos = writeUint(buf, pos, whole);
  buf[pos++] = 46; // .
  return writePadded(buf, pos, scaled - whole * unit, decimals);
}
const POWERS_OF_TEN = [1, 10, 100, 1_000, 10_000];

function writeHex(buf: Buffer, pos: number, word: number, nibbles: number): number {
  for (let k = pos + nibbles - 1; k >= pos; k--) {
    buf[k] = HEX[word & 15]!;
    word >>>= 4;
  }
  return pos + nibbles;
}

/**
 * RFC 9562 UUIDv7, the layout `uuid`'s `v7({ msecs })` produces: 48-bit Unix ms, version 7,
 * 12 random bits, variant 10, 62 random bits (from three words of the day's PRNG).
 */
function writeUuidV7(buf: Buffer, pos: number, ms: number, bits: Uint32Array, row: number): number {
  const hi = Math.floor(ms / 4_294_967_296); // top 16 of the 48 bits
  const lo = ms >>> 0;
  const w0 = bits[3 * row]!;
  pos = writeHex(buf, pos, (hi << 16) | (lo >>> 16), 8);
  buf[pos++] = 45; // -
  pos = writeHex(buf, pos, lo & 0xffff, 4);
  buf[pos++] = 45;
  pos = writeHex(buf, pos, 0x7000 | (w0 & 0xfff), 4);
  buf[pos++] = 45;
  pos = writeHex(buf, pos, 0x8000 | ((w0 >>> 12) & 0x3fff), 4);
  buf[pos++] = 45;
  pos = writeHex(buf, pos, bits[3 * row + 1]! & 0xffff, 4);
  return writeHex(buf, pos, bits[3 * row + 2]!, 8);
}

/** ISO 8601 UTC with ms (`2025-01-31T23:59:59.999Z`); the date part is kept per day. */
class DateWriter {
  private day = NaN;
  private readonly prefix = Buffer.alloc(11); // YYYY-MM-DDT

  write(buf: Buffer, pos: number, ms: number): number {
    const day = Math.floor(ms / DAY_MS);
    if (day !== this.day) {
      this.day = day;
      this.prefix.write(new Date(day * DAY_MS).toISOString().slice(0, 11), 0, 'latin1');
    }
    pos = writeBytes(buf, pos, this.prefix);
    let x = (ms - day * DAY_MS) | 0; // ms of the day: int32
    let q = (x / 1000) | 0;
    const milli = x - q * 1000;
    x = q;
    q = (x / 60) | 0;
    const second = x - q * 60;
    x = q;
    q = (x / 60) | 0;
    const minute = x - q * 60;
    const hour = q;
    pos = writePadded(buf, pos, hour, 2);
    buf[pos++] = 58; // :
    pos = writePadded(buf, pos, minute, 2);
    buf[pos++] = 58;
    pos = writePadded(buf, pos, second, 2);
    buf[pos++] = 46; // .
    pos = writePadded(buf, pos, milli, 3);
    buf[pos++] = 90; // Z
    return pos;
  }
}
