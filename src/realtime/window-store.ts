import type { ChainableCommander } from 'ioredis';
import type { Redis } from '../redis/create-redis.js';
import { pipelinePerSlot } from '../redis/pipeline-per-slot.js';
import type { StreamEvent } from '../ingest/stream-event.js';
import type { StreamKeys, WindowKeys } from '../redis/keys.js';
import { compareStreamIds } from '../streams/stream-entries.js';
import { bucketOf, quantiles } from './log-histogram.js';
import { WINDOW_MS, WINDOW_NAMES, windowStart, type WindowName } from './window.js';

/**
 * Applies a batch's counts to its windows and acknowledges the batch's entries, atomically, so an
 * entry is counted exactly once however often it is delivered: a consumer that dies after the
 * script has run leaves nothing pending, and one that dies before it leaves everything pending
 * and nothing counted.
 *
 * The script first checks that this consumer still holds every entry: XPENDING over the batch's
 * id range for this consumer, a read (XCLAIM ... JUSTID, used before, rewrote and propagated
 * every entry, five times the Redis time). If another consumer has meanwhile reclaimed some
 * (and counted them, or will), it changes nothing and answers those ids, and the caller counts
 * the batch again without them.
 *
 * The batch arrives folded, one delta per touched window (`deltasOf` below), so Redis does a fixed
 * handful of commands per window whatever the number of events: HINCRBYs on the window's hash,
 * and one BITFIELD that adds the batch's histogram buckets to the window's counter strings (one
 * u32 counter per bucket: a C loop with no number parsing in Lua, about a third of the Redis time
 * of reading and rewriting hash fields).
 *
 * Unique users are not in the script: a window's HyperLogLog gathers every partition's users
 * under the tenant's hash tag (src/redis/keys.ts), another slot than the partition's on a Redis
 * Cluster. `apply` PFADDs a batch's users before the script runs, so a snapshot published after
 * the script holds them. PFADD is idempotent: a batch delivered again, or applied again without
 * the entries another consumer took over (which that consumer adds too), leaves the HyperLogLog
 * as it was, and a crash between the PFADD and the script loses nothing.
 *
 * KEYS[1] = the partition's stream, then per window its hash, positive and negative histogram
 * strings (all under the partition's hash tag, src/redis/keys.ts).
 * ARGV[1] = group, ARGV[2] = consumer, ARGV[3] = n, ARGV[4..3+n] = entry ids, ARGV[4+n] and
 * ARGV[5+n] = the smallest and largest of them, ARGV[6+n] = the deltas as JSON, then the deltas'
 * BITFIELD operations, which each delta locates by first index and count (they stay plain
 * arguments: no JSON decoding, no Lua table per value): [firstKey, expireAtMs, count,
 * valueCount, sum, min, max, zeros, positiveAt, positiveN, negativeAt, negativeN, [overflow
 * bucket, count, …]]. Sums, minima and maxima travel as strings: Lua would print a number with
 * 14 digits.
 * Returns {1} when applied, or {0, gone ids}.
 */
const APPLY_LUA = `
local stream, group, consumer = KEYS[1], ARGV[1], ARGV[2]
local n = tonumber(ARGV[3])
if n > 0 then
  local held = {}
  local from = ARGV[4 + n]
  repeat
    local page = redis.call('XPENDING', stream, group, from, ARGV[5 + n], 1000, consumer)
    for _, entry in ipairs(page) do held[entry[1]] = true end
    if #page < 1000 then break end
    from = '(' .. page[#page][1]
  until false
  local gone = {}
  for i = 1, n do
    if not held[ARGV[3 + i]] then gone[#gone + 1] = ARGV[3 + i] end
  end
  if #gone > 0 then return {0, gone} end
end
-- BITFIELD over ARGV[first .. first+count-1], in slices Lua's unpack can take.
local function sliced(key, first, count, size)
  local last = first + count - 1
  for i = first, last, size do
    redis.call('BITFIELD', key, 'OVERFLOW', 'SAT', unpack(ARGV, i, math.min(i + size - 1, last)))
  end
end
for _, d in ipairs(cjson.decode(ARGV[6 + n])) do
  local h = KEYS[d[1]]
  redis.call('HINCRBY', h, 'c', d[3])
  redis.call('HINCRBY', h, 'r', 1)
  if d[4] > 0 then
    redis.call('HINCRBY', h, 'vc', d[4])
    redis.call('HINCRBYFLOAT', h, 's', d[5])
    local cur = redis.call('HMGET', h, 'mn', 'mx')
    local mn = d[6]
    if cur[1] and tonumber(cur[1]) <= tonumber(mn) then mn = cur[1] end
    local mx = d[7]
    if cur[2] and tonumber(cur[2]) >= tonumber(mx) then mx = cur[2] end
    redis.call('HSET', h, 'mn', mn, 'mx', mx)
    if d[8] > 0 then redis.call('HINCRBY', h, 'z', d[8]) end
    local overflow = d[13]
    for i = 1, #overflow, 2 do redis.call('HINCRBY', h, overflow[i], overflow[i + 1]) end
    if d[10] > 0 then
      sliced(KEYS[d[1] + 1], d[9], d[10], 4000)
      redis.call('PEXPIREAT', KEYS[d[1] + 1], d[2])
    end
    if d[12] > 0 then
      sliced(KEYS[d[1] + 2], d[11], d[12], 4000)
      redis.call('PEXPIREAT', KEYS[d[1] + 2], d[2])
    end
  end
  redis.call('PEXPIREAT', h, d[2])
end
if n > 0 then
  local ack = {'XACK', stream, group}
  for i = 1, n do ack[#ack + 1] = ARGV[3 + i] end
  redis.call(unpack(ack))
end
return {1}
`;

/**
 * Where a histogram bucket (src/realtime/log-histogram.ts) is counted: bucket index i of the
 * positive or negative values at counter slot zigzag(i) of that sign's string (0, -1, 1, -2, … →
 * 0, 1, 2, 3, …), so the string's length follows the largest magnitude seen either side of 1
 * (values 0.001 to 1000 need about 1,400 slots, 5.5 KB). The zero bucket is the hash field `z`;
 * buckets past MAX_SLOTS (magnitudes beyond about 1e17 or below 1e-17) are hash fields of their own.
 */
const MAX_SLOTS = 8_192;
const slotOf = (index: number) => (index >= 0 ? 2 * index : -2 * index - 1);
const indexOfSlot = (slot: number) => (slot % 2 === 0 ? slot / 2 : -(slot + 1) / 2);
const OVERFLOW_FIELD = /^[pn]-?\d+$/;

/** The smallest and largest of stream ids. */
function idRange(ids: readonly string[]): [string, string] {
  let lo = ids[0]!;
  let hi = ids[0]!;
  for (const id of ids) {
    if (compareStreamIds(id, lo) < 0) lo = id;
    if (compareStreamIds(id, hi) > 0) hi = id;
  }
  return [lo, hi];
}

type WithApply = { agwApplyWindows(numKeys: number, ...keysAndArgs: string[]): Promise<[number, string[]?]> };

export interface AggregateEntry {
  readonly entryId: string;
  /** null: unparseable; acknowledged, never counted (the persist group dead-letters it). */
  readonly event: StreamEvent | null;
}

/** A window a batch changed. */
export interface TouchedWindow {
  readonly tenantId: string;
  readonly type: string | null;
  readonly window: WindowName;
  readonly start: number;
}

export interface WindowSnapshot {
  readonly window: WindowName;
  readonly type: string | null;
  readonly start: Date;
  readonly end: Date;
  readonly count: number;
  readonly sum: number | null;
  readonly min: number | null;
  readonly max: number | null;
  readonly avg: number | null;
  readonly p50: number | null;
  readonly p95: number | null;
  readonly p99: number | null;
  readonly uniqueUsers: number;
  /** Moves on every batch applied to the window on any partition. */
  readonly revision: number;
  /** The window has closed and its grace period has passed: nothing more will be counted. */
  readonly final: boolean;
}

interface Delta {
  readonly window: TouchedWindow;
  readonly keys: WindowKeys;
  /** The window's HyperLogLog of users, under the tenant's hash tag. */
  readonly usersKey: string;
  count: number;
  valueCount: number;
  sum: number;
  min: number;
  max: number;
  users: Set<string>;
  buckets: Map<string, number>;
  expireAt: number;
}

export interface WindowStoreOptions {
  /** How long after a window closes events still count in it (REALTIME_WINDOW_GRACE_MS, default 30 s). */
  readonly graceMs: number;
}

/** How long a final window stays readable after its grace period. */
const KEEP_FINAL_MS = 5 * 60_000;

/** User ids per PFADD: bounds one command's arguments for a batch of many distinct users. */
const USERS_PER_PFADD = 1_000;

export function createWindowStore(redis: Redis, keys: StreamKeys, options: WindowStoreOptions) {
  redis.defineCommand('agwApplyWindows', { lua: APPLY_LUA });
  const { graceMs } = options;

  function deltasOf(partition: number, entries: readonly AggregateEntry[], now: number) {
    const deltas = new Map<string, Delta>();
    const late = new Map<WindowName, number>();
    /** Per window length, the receipt time of the newest event counted in it. */
    const newest = new Map<WindowName, number>();
    for (const { event } of entries) {
      if (!event) continue;
      const bucket = event.value === null ? null : bucketOf(event.value);
      for (const window of WINDOW_NAMES) {
        const start = windowStart(window, event.occurredAt);
        // Later than the window's end plus its grace period: counted as late, not in the window.
        if (start + WINDOW_MS[window] + graceMs <= now) {
          late.set(window, (late.get(window) ?? 0) + 1);
          continue;
        }
        newest.set(window, Math.max(newest.get(window) ?? 0, event.receivedAt));
        for (const type of [event.type, null]) {
          // One short string per event and window to find the delta; the window's Redis key names
          // are built once per delta.
          const key = `${event.tenantId}|${window}|${start}|${type ?? '*'}`;
          let d = deltas.get(key);
          if (!d) {
            d = {
              window: { tenantId: event.tenantId, type, window, start },
              keys: keys.window(partition, event.tenantId, window, start, type),
              usersKey: keys.windowUsers(event.tenantId, window, start, type),
              count: 0,
              valueCount: 0,
              sum: 0,
              min: Infinity,
              max: -Infinity,
              users: new Set(),
              buckets: new Map(),
              expireAt: start + WINDOW_MS[window] + graceMs + KEEP_FINAL_MS,
            };
            deltas.set(key, d);
          }
          d.count++;
          if (event.userId !== null) d.users.add(event.userId);
          if (event.value !== null) {
            d.valueCount++;
            d.sum += event.value;
            d.min = Math.min(d.min, event.value);
            d.max = Math.max(d.max, event.value);
            d.buckets.set(bucket!, (d.buckets.get(bucket!) ?? 0) + 1);
          }
        }
      }
    }
    return { deltas, late, newest };
  }

  /**
   * PFADDs the deltas' users to their windows' HyperLogLogs: one pipeline per tenant (its hash
   * tag), each window's PFADD in slices of USERS_PER_PFADD with the window's expiry.
   */
  async function addUsers(deltas: Iterable<Delta>): Promise<void> {
    const byTenant = new Map<string, Delta[]>();
    for (const d of deltas) {
      if (d.users.size === 0) continue;
      const list = byTenant.get(d.window.tenantId);
      if (list) list.push(d);
      else byTenant.set(d.window.tenantId, [d]);
    }
    if (byTenant.size === 0) return;
    const replies = await pipelinePerSlot(
      redis,
      [...byTenant.values()].map((list) => (pipeline) => {
        for (const d of list) {
          const users = [...d.users];
          for (let i = 0; i < users.length; i += USERS_PER_PFADD) {
            pipeline.pfadd(d.usersKey, ...users.slice(i, i + USERS_PER_PFADD));
          }
          pipeline.pexpireat(d.usersKey, d.expireAt);
        }
      }),
    );
    for (const [err] of replies.flat()) if (err) throw err;
  }

  /**
   * Counts the entries (all read from `partition` by `consumer` of `group`) in their windows and
   * acknowledges them. Returns how many events were too late for each window.
   */
  async function apply(
    partition: number,
    group: string,
    consumer: string,
    entries: readonly AggregateEntry[],
    now = Date.now(),
  ): Promise<{
    late: Map<WindowName, number>;
    newest: Map<WindowName, number>;
    applied: number;
    touched: TouchedWindow[];
    events: StreamEvent[];
  }> {
    let remaining = entries;
    for (let attempt = 0; ; attempt++) {
      const { deltas, late, newest } = deltasOf(partition, remaining, now);
      // The first attempt's users include every later attempt's (a subset of its entries).
      if (attempt === 0) await addUsers(deltas.values());
      const windowKeys: string[] = [];
      // ARGV after the deltas: every window's BITFIELD operations, located by 1-based ARGV index
      // (ARGV[6 + ids] is the JSON; these follow it).
      const ids = remaining.map((e) => e.entryId);
      const tail: string[] = [];
      const argvAt = () => 7 + ids.length + tail.length;
      const range = ids.length ? idRange(ids) : ['0-0', '0-0'];
      const payload = [...deltas.values()].map((d) => {
        windowKeys.push(d.keys.hash, d.keys.positive, d.keys.negative);
        let zeros = 0;
        const overflow: (string | number)[] = [];
        const sides = { p: [] as string[], n: [] as string[] };
        for (const [bucket, n] of d.buckets) {
          if (bucket === 'z') {
            zeros = n;
            continue;
          }
          const slot = slotOf(Number(bucket.slice(1)));
          if (slot >= MAX_SLOTS) overflow.push(bucket, n);
          else sides[bucket[0] as 'p' | 'n'].push('INCRBY', 'u32', `#${slot}`, String(n));
        }
        const positiveAt = argvAt();
        tail.push(...sides.p);
        const negativeAt = argvAt();
        tail.push(...sides.n);
        return [
          // KEYS index (1-based, after the stream) of the window's hash; its other keys follow it.
          windowKeys.length - 1,
          d.expireAt,
          d.count,
          d.valueCount,
          String(d.sum),
          String(d.min),
          String(d.max),
          zeros,
          positiveAt,
          sides.p.length,
          negativeAt,
          sides.n.length,
          overflow,
        ];
      });
      const [applied, gone] = await (redis as Redis & WithApply).agwApplyWindows(
        1 + windowKeys.length,
        keys.stream(partition),
        ...windowKeys,
        group,
        consumer,
        String(ids.length),
        ...ids,
        ...range,
        JSON.stringify(payload),
        ...tail,
      );
      if (applied === 1) {
        const events = remaining.flatMap((e) => (e.event ? [e.event] : []));
        const touched = [...deltas.values()].map((d) => d.window);
        return { late, newest, applied: remaining.length, touched, events };
      }
      const without = new Set(gone);
      remaining = remaining.filter((e) => !without.has(e.entryId));
    }
  }

  /**
   * The tenant's window holding `at`, merged over every partition, as it stands; `final` as of
   * `now` (its end plus the grace period).
   */
  async function read(
    tenantId: string,
    type: string | null,
    window: WindowName,
    at: number,
    now = Date.now(),
  ): Promise<WindowSnapshot> {
    const start = windowStart(window, at);
    const hashes = Array.from({ length: keys.partitions }, (_, p) => keys.window(p, tenantId, window, start, type));
    // Each partition's part under its own tag, and the users of all of them under the tenant's.
    const replies = (
      await pipelinePerSlot(redis, [
        ...hashes.map((key) => (pipeline: ChainableCommander) => {
          pipeline.hgetall(key.hash).getBuffer(key.positive).getBuffer(key.negative);
        }),
        (pipeline: ChainableCommander) => {
          pipeline.pfcount(keys.windowUsers(tenantId, window, start, type));
        },
      ])
    ).flat();
    for (const [err] of replies) if (err) throw err;
    let count = 0;
    let valueCount = 0;
    let sum = 0;
    let min: number | null = null;
    let max: number | null = null;
    let revision = 0;
    const buckets = new Map<string, number>();
    const add = (bucket: string, n: number) => buckets.set(bucket, (buckets.get(bucket) ?? 0) + n);
    for (let i = 0; i < hashes.length; i++) {
      const h = replies[3 * i]![1] as Record<string, string>;
      count += Number(h.c ?? 0);
      revision += Number(h.r ?? 0);
      const vc = Number(h.vc ?? 0);
      if (vc === 0) continue;
      valueCount += vc;
      sum += Number(h.s);
      min = min === null ? Number(h.mn) : Math.min(min, Number(h.mn));
      max = max === null ? Number(h.mx) : Math.max(max, Number(h.mx));
      if (h.z) add('z', Number(h.z));
      for (const [field, n] of Object.entries(h)) if (OVERFLOW_FIELD.test(field)) add(field, Number(n));
      for (const [side, reply] of [
        ['p', replies[3 * i + 1]![1]],
        ['n', replies[3 * i + 2]![1]],
      ] as const) {
        const counters = reply as Buffer | null;
        if (!counters) continue;
        for (let slot = 0; 4 * slot + 4 <= counters.length; slot++) {
          const n = counters.readUInt32BE(4 * slot);
          if (n > 0) add(`${side}${indexOfSlot(slot)}`, n);
        }
      }
    }
    const [p50, p95, p99] = quantiles(buckets, [0.5, 0.95, 0.99]);
    const end = start + WINDOW_MS[window];
    return {
      window,
      type,
      start: new Date(start),
      end: new Date(end),
      count,
      sum: valueCount ? sum : null,
      min,
      max,
      avg: valueCount ? sum / valueCount : null,
      p50: p50 ?? null,
      p95: p95 ?? null,
      p99: p99 ?? null,
      uniqueUsers: Number(replies.at(-1)![1]),
      revision,
      final: now >= end + graceMs,
    };
  }

  return { apply, read };
}

export type WindowStore = ReturnType<typeof createWindowStore>;
