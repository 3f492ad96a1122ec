import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import type { Redis } from '../redis/create-redis.js';
import { CONSUMER_GROUPS, type StreamKeys } from '../redis/keys.js';
import { compareStreamIds, nextStreamId, pairsToRecord } from './stream-entries.js';

export interface GroupState {
  readonly pending: number;
  readonly lag: number | null;
  readonly lastDeliveredId: string;
}

export interface PartitionState {
  readonly length: number;
  readonly deadLetters: number;
  readonly groups: Record<string, GroupState>;
}

/** Groups whose unread and unacknowledged entries must survive trimming. */
/**
 * XTRIM MINID, and then the stream's max-deleted-entry-id raised to the greatest id it trimmed
 * (XSETID): Redis 7 moves that id on XDEL only, and eventRecorded's replay (src/realtime/
 * event-replay.ts) reads it to know exactly whether entries after a cursor are gone. Atomic, so
 * an XADD in between cannot move the last id under XSETID. KEYS[1] = stream, ARGV[1] = floor.
 * Returns how many entries were trimmed.
 */
const TRIM_LUA = `
local stream, floor = KEYS[1], ARGV[1]
local below = redis.call('XREVRANGE', stream, '(' .. floor, '-', 'COUNT', 1)
if #below == 0 then return 0 end
local trimmed = redis.call('XTRIM', stream, 'MINID', floor)
local info = redis.call('XINFO', 'STREAM', stream)
local state = {}
for i = 1, #info, 2 do state[info[i]] = info[i + 1] end
local function parts(id)
  local ms, seq = string.match(id, '^(%d+)-(%d+)$')
  return tonumber(ms), tonumber(seq)
end
local top = below[1][1]
local tms, tseq = parts(top)
local dms, dseq = parts(state['max-deleted-entry-id'])
if dms < tms or (dms == tms and dseq < tseq) then
  redis.call('XSETID', stream, state['last-generated-id'], 'ENTRIESADDED', state['entries-added'], 'MAXDELETEDID', top)
end
return trimmed
`;

type WithTrim = { agwTrimStream(numKeys: number, stream: string, floor: string): Promise<number> };

/** Trims a stream below `floor` (XTRIM MINID), recording the greatest id trimmed (TRIM_LUA). */
export function trimStreamBelow(redis: Redis, stream: string, floor: string): Promise<number> {
  if (!(redis as Redis & Partial<WithTrim>).agwTrimStream) redis.defineCommand('agwTrimStream', { lua: TRIM_LUA });
  return (redis as Redis & WithTrim).agwTrimStream(1, stream, floor);
}

/** A consumer idle this long with nothing pending is a process that is gone (each start takes a new name). */
const FORGET_CONSUMER_AFTER_MS = 60 * 60_000;

/**
 * Bounds the streams without losing events, and reports their state.
 *
 * Redis 7 trims by length or id but knows nothing of consumer groups, so XADD MAXLEN could drop
 * events nobody has persisted. Instead this loop trims each partition below the oldest entry that
 * any required group still needs: its oldest pending entry, or else the first entry after its
 * last-delivered id. Until every required group exists, nothing is trimmed. The hard bound is
 * STREAM_MAX_LENGTH, enforced at append time as backpressure (see src/ingest/event-stream.ts).
 */
export function createStreamMaintenanceWorker(deps: {
  redis: Redis;
  keys: StreamKeys;
  metrics: Metrics;
  logger: Logger;
  intervalMs: number;
  /** Groups whose unread and pending entries are never trimmed. Default: persist and aggregate. */
  requiredGroups?: readonly string[];
  /**
   * Entries younger than this are kept though every group is done with them, for eventRecorded's
   * replay (src/realtime/event-replay.ts), while the partition holds fewer than `replayMaxLength`.
   * STREAM_REPLAY_RETENTION_MS, default 0; `replayMaxLength` is half of STREAM_MAX_LENGTH.
   */
  replayRetentionMs?: number;
  replayMaxLength?: number;
}) {
  const { redis, keys, metrics } = deps;
  const requiredGroups = deps.requiredGroups ?? Object.values(CONSUMER_GROUPS);
  const log = deps.logger.child({ worker: 'stream-maintenance' });
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> | undefined;

  async function inspect(partition: number): Promise<PartitionState> {
    const stream = keys.stream(partition);
    const [length, deadLetters, rawGroups] = await Promise.all([
      redis.xlen(stream),
      redis.xlen(keys.deadLetters(partition)),
      (redis.xinfo('GROUPS', stream) as Promise<unknown[][]>).catch((err: Error) => {
        if (err.message.includes('no such key')) return [] as unknown[][];
        throw err;
      }),
    ]);
    const groups: Record<string, GroupState> = {};
    for (const flat of rawGroups) {
      const info = pairsToRecord(flat);
      groups[String(info.name)] = {
        pending: Number(info.pending),
        lag: info.lag === null || info.lag === undefined ? null : Number(info.lag),
        lastDeliveredId: String(info['last-delivered-id']),
      };
    }
    return { length, deadLetters, groups };
  }

  /** Trims below what every required group still needs; returns how many entries went. */
  async function trim(partition: number, state: PartitionState): Promise<number> {
    const stream = keys.stream(partition);
    let floor: string | undefined;
    for (const group of requiredGroups) {
      const g = state.groups[group];
      if (!g) return 0;
      let needed = nextStreamId(g.lastDeliveredId);
      if (g.pending > 0) {
        const [, oldestPending] = (await redis.xpending(stream, group)) as [
          number,
          string | null,
          string | null,
          unknown,
        ];
        if (oldestPending) needed = oldestPending;
      }
      if (floor === undefined || compareStreamIds(needed, floor) < 0) floor = needed;
    }
    const retention = deps.replayRetentionMs ?? 0;
    if (floor && retention > 0 && state.length < (deps.replayMaxLength ?? Infinity)) {
      const kept = `${Math.max(0, Date.now() - retention)}-0`;
      if (compareStreamIds(kept, floor) < 0) floor = kept;
    }
    // Exact, not '~': approximate trimming only drops whole radix nodes (~100 entries), so a quiet
    // stream would never shrink; once a second this costs little.
    return floor ? trimStreamBelow(redis, stream, floor) : 0;
  }

  /** Removes consumers that hold no entries and have not read for an hour: finished processes. */
  async function forgetGoneConsumers(partition: number, state: PartitionState): Promise<void> {
    const stream = keys.stream(partition);
    for (const group of Object.keys(state.groups)) {
      const consumers = (await redis.xinfo('CONSUMERS', stream, group)) as unknown[][];
      for (const flat of consumers) {
        const info = pairsToRecord(flat);
        if (Number(info.pending) === 0 && Number(info.idle) > FORGET_CONSUMER_AFTER_MS) {
          await redis.xgroup('DELCONSUMER', stream, group, String(info.name));
        }
      }
    }
  }

  async function runOnce(): Promise<PartitionState[]> {
    const states: PartitionState[] = [];
    let deadLetters = 0;
    for (let partition = 0; partition < keys.partitions; partition++) {
      const state = await inspect(partition);
      await trim(partition, state);
      await forgetGoneConsumers(partition, state);
      states.push(state);
      deadLetters += state.deadLetters;
      metrics.streamLength.set({ partition: String(partition) }, state.length);
      for (const [group, g] of Object.entries(state.groups)) {
        const labels = { group, partition: String(partition) };
        metrics.streamGroupPending.set(labels, g.pending);
        if (g.lag !== null) metrics.streamGroupLag.set(labels, g.lag);
      }
    }
    metrics.deadLetterLength.set(deadLetters);
    return states;
  }

  const tick = () => {
    running ??= runOnce()
      .then(() => undefined)
      .catch((err: unknown) => log.debug({ err }, 'stream maintenance failed; will retry'))
      .finally(() => (running = undefined));
  };

  return {
    runOnce,
    /** Live state for /ready: length, dead letters, and per group pending and lag. */
    inspectAll: () => Promise.all(Array.from({ length: keys.partitions }, (_, p) => inspect(p))),
    async start(): Promise<void> {
      timer = setInterval(tick, deps.intervalMs);
      timer.unref();
    },
    async stop(): Promise<void> {
      clearInterval(timer);
      await running;
    },
  };
}
