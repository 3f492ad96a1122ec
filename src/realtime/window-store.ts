import type { Redis } from '../redis/create-redis.js';
import type { StreamEvent } from '../ingest/stream-event.js';
import type { StreamKeys, WindowKeys } from '../redis/keys.js';
import { bucketOf, quantiles } from './log-histogram.js';
import { WINDOW_MS, WINDOW_NAMES, windowStart, type WindowName } from './window.js';

/**
 * Applies a batch's counts to its windows and acknowledges the batch's entries, atomically, so an
 * entry is counted exactly once however often it is delivered: a consumer that dies after the
 * script has run leaves nothing pending, and one that dies before it leaves everything pending
 * and nothing counted.
 *
 * The script first checks that every entry is still pending for the group (XCLAIM ... JUSTID to
 * itself answers only the ids still in the pending list, and counts no delivery). If another
 * consumer has meanwhile reclaimed and counted some, it changes nothing and answers those ids, and
 * the caller counts the batch again without them.
 *
 * KEYS[1] = the partition's stream, KEYS[2..] = per window its hash, HyperLogLog and histogram.
 * ARGV[1] = group, ARGV[2] = consumer, ARGV[3] = n, ARGV[4..3+n] = entry ids, ARGV[4+n] = the
 * deltas as JSON: [[hashKeyIndex, hllKeyIndex, expireAtMs, count, valueCount, sum, min, max,
 * [user…], [bucket, count, …], histogramKeyIndex]]. Sums, minima and maxima travel as strings: Lua would print a
 * number with 14 digits.
 * Returns {1} when applied, or {0, gone ids}.
 */
const APPLY_LUA = `
local stream, group, consumer = KEYS[1], ARGV[1], ARGV[2]
local n = tonumber(ARGV[3])
if n > 0 then
  local claim = {'XCLAIM', stream, group, consumer, 0}
  for i = 1, n do claim[#claim + 1] = ARGV[3 + i] end
  claim[#claim + 1] = 'JUSTID'
  local held = redis.call(unpack(claim))
  if #held < n then
    local present = {}
    for _, id in ipairs(held) do present[id] = true end
    local gone = {}
    for i = 1, n do
      if not present[ARGV[3 + i]] then gone[#gone + 1] = ARGV[3 + i] end
    end
    return {0, gone}
  end
end
for _, d in ipairs(cjson.decode(ARGV[4 + n])) do
  local h, u = KEYS[d[1]], KEYS[d[2]]
  redis.call('HINCRBY', h, 'c', d[4])
  redis.call('HINCRBY', h, 'r', 1)
  if d[5] > 0 then
    redis.call('HINCRBY', h, 'vc', d[5])
    redis.call('HINCRBYFLOAT', h, 's', d[6])
    local mn = redis.call('HGET', h, 'mn')
    if not mn or tonumber(d[7]) < tonumber(mn) then redis.call('HSET', h, 'mn', d[7]) end
    local mx = redis.call('HGET', h, 'mx')
    if not mx or tonumber(d[8]) > tonumber(mx) then redis.call('HSET', h, 'mx', d[8]) end
    -- One HMGET and one HSET per window rather than an HINCRBY per bucket: a batch with many
    -- distinct values touches hundreds of buckets, and each redis.call costs more than its work.
    local b = d[10]
    if #b > 0 then
      local hist = KEYS[d[11]]
      local names = {}
      for i = 1, #b, 2 do names[#names + 1] = b[i] end
      local current = redis.call('HMGET', hist, unpack(names))
      local set = {'HSET', hist}
      for i = 1, #b, 2 do
        set[#set + 1] = b[i]
        set[#set + 1] = (tonumber(current[(i + 1) / 2]) or 0) + b[i + 1]
      end
      redis.call(unpack(set))
      redis.call('PEXPIREAT', hist, d[3])
    end
  end
  local users = d[9]
  for i = 1, #users, 500 do
    redis.call('PFADD', u, unpack(users, i, math.min(i + 499, #users)))
  end
  redis.call('PEXPIREAT', h, d[3])
  if #users > 0 then redis.call('PEXPIREAT', u, d[3]) end
end
if n > 0 then
  local ack = {'XACK', stream, group}
  for i = 1, n do ack[#ack + 1] = ARGV[3 + i] end
  redis.call(unpack(ack))
end
return {1}
`;

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
          const windowKeys = keys.window(partition, event.tenantId, window, start, type);
          const key = windowKeys.hash;
          let d = deltas.get(key);
          if (!d) {
            d = {
              window: { tenantId: event.tenantId, type, window, start },
              keys: windowKeys,
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
    for (;;) {
      const { deltas, late, newest } = deltasOf(partition, remaining, now);
      const windowKeys: string[] = [];
      const payload = [...deltas.values()].map((d) => {
        windowKeys.push(d.keys.hash, d.keys.users, d.keys.histogram);
        const buckets = [...d.buckets].flat();
        return [
          // KEYS indexes (1-based, after the stream) of the hash and HyperLogLog just pushed.
          windowKeys.length - 1,
          windowKeys.length,
          d.expireAt,
          d.count,
          d.valueCount,
          String(d.sum),
          String(d.min),
          String(d.max),
          [...d.users],
          buckets,
          // ...and of the histogram.
          windowKeys.length + 1,
        ];
      });
      const ids = remaining.map((e) => e.entryId);
      const [applied, gone] = await (redis as Redis & WithApply).agwApplyWindows(
        1 + windowKeys.length,
        keys.stream(partition),
        ...windowKeys,
        group,
        consumer,
        String(ids.length),
        ...ids,
        JSON.stringify(payload),
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

  /** The tenant's window, merged over every partition. */
  async function read(tenantId: string, type: string | null, window: WindowName, at: number): Promise<WindowSnapshot> {
    const start = windowStart(window, at);
    const hashes = Array.from({ length: keys.partitions }, (_, p) => keys.window(p, tenantId, window, start, type));
    const pipeline = redis.pipeline();
    for (const key of hashes) pipeline.hgetall(key.hash).hgetall(key.histogram);
    // Unique users across partitions: PFCOUNT of several keys counts their union.
    pipeline.pfcount(...hashes.map((key) => key.users));
    const replies = (await pipeline.exec()) ?? [];
    for (const [err] of replies) if (err) throw err;
    let count = 0;
    let valueCount = 0;
    let sum = 0;
    let min: number | null = null;
    let max: number | null = null;
    let revision = 0;
    const buckets = new Map<string, number>();
    for (let i = 0; i < hashes.length; i++) {
      const h = replies[2 * i]![1] as Record<string, string>;
      const histogram = replies[2 * i + 1]![1] as Record<string, string>;
      count += Number(h.c ?? 0);
      revision += Number(h.r ?? 0);
      const vc = Number(h.vc ?? 0);
      if (vc === 0) continue;
      valueCount += vc;
      sum += Number(h.s);
      min = min === null ? Number(h.mn) : Math.min(min, Number(h.mn));
      max = max === null ? Number(h.mx) : Math.max(max, Number(h.mx));
      for (const [bucket, n] of Object.entries(histogram)) buckets.set(bucket, (buckets.get(bucket) ?? 0) + Number(n));
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
      final: Date.now() >= end + graceMs,
    };
  }

  return { apply, read };
}

export type WindowStore = ReturnType<typeof createWindowStore>;
