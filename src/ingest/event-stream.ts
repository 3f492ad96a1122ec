import type { ChainableCommander } from 'ioredis';
import type { Redis } from '../redis/create-redis.js';
import { pipelinePerSlot } from '../redis/pipeline-per-slot.js';
import { encodeStreamEvent, type StreamEvent } from './stream-event.js';
import type { StreamKeys } from '../redis/keys.js';

/**
 * Appends one request's events of one partition atomically. For each event that carries a
 * messageId, `SET NX GET` claims its dedupe key: when the key was already there the event is a
 * duplicate and the script answers the first event's id instead of appending it. Atomic, so two
 * concurrent retries of one event cannot both append it.
 *
 * KEYS[1] = the partition's stream, KEYS[2..] = dedupe keys. ARGV[1] = dedupe window (s),
 * ARGV[2] = backlog limit, ARGV[3] = tenant id, ARGV[4] = "1" when already in Postgres,
 * then per event: dedupe key index (0 = none), event id, payload.
 * Returns, per event, "" when appended or the first event's id when a duplicate.
 */
const ENQUEUE_LUA = `
local stream = KEYS[1]
if redis.call('XLEN', stream) >= tonumber(ARGV[2]) then
  return redis.error_reply('BACKLOG the event stream is full; consumers are behind')
end
local out = {}
local n = (#ARGV - 4) / 3
for i = 0, n - 1 do
  local k = tonumber(ARGV[5 + i * 3])
  local first = false
  if k > 0 then
    first = redis.call('SET', KEYS[k], ARGV[6 + i * 3], 'NX', 'GET', 'EX', ARGV[1])
  end
  if first then
    out[#out + 1] = first
  else
    if ARGV[4] == '1' then
      redis.call('XADD', stream, '*', 't', ARGV[3], 'e', ARGV[7 + i * 3], 'p', '1')
    else
      redis.call('XADD', stream, '*', 't', ARGV[3], 'e', ARGV[7 + i * 3])
    end
    out[#out + 1] = ''
  end
end
return out
`;

type WithEnqueue = { agwEnqueue(numKeys: number, ...keysAndArgs: string[]): Promise<string[]> };

/** Thrown when a partition has reached STREAM_MAX_LENGTH: the caller answers SERVICE_UNAVAILABLE. */
export class StreamBacklogFullError extends Error {}

export function createEventStream(
  redis: Redis,
  keys: StreamKeys,
  options: { dedupeWindowS: number; maxLength: number },
) {
  redis.defineCommand('agwEnqueue', { lua: ENQUEUE_LUA });

  return {
    /**
     * Appends the events (all of one tenant) in one round trip: one script per partition,
     * pipelined (on a Redis Cluster, one pipeline per partition, all sent at once). Resolves, per
     * event, null when appended or the first event's id when it is a duplicate. With `persisted`,
     * messages are marked as already in Postgres (INGEST_ACK=postgres) and dedupe keys are
     * skipped, Postgres having decided that already.
     */
    async enqueue(tenantId: string, events: readonly StreamEvent[], persisted = false): Promise<(string | null)[]> {
      const byPartition = new Map<number, number[]>();
      events.forEach((e, index) => {
        const partition = keys.partitionOf(tenantId, e.messageId ?? e.id);
        const list = byPartition.get(partition);
        if (list) list.push(index);
        else byPartition.set(partition, [index]);
      });
      const order: number[][] = [];
      const scripts: ((pipeline: ChainableCommander) => void)[] = [];
      for (const [partition, indexes] of byPartition) {
        const dedupeKeys: string[] = [];
        const args: string[] = [
          String(options.dedupeWindowS),
          String(options.maxLength),
          tenantId,
          persisted ? '1' : '0',
        ];
        for (const index of indexes) {
          const e = events[index]!;
          let keyIndex = 0;
          if (e.messageId !== null && !persisted) {
            dedupeKeys.push(keys.dedupe(partition, tenantId, e.messageId));
            keyIndex = dedupeKeys.length + 1;
          }
          args.push(String(keyIndex), e.id, encodeStreamEvent(e));
        }
        scripts.push(
          (pipeline) =>
            void (pipeline as ChainableCommander & WithEnqueue).agwEnqueue(
              1 + dedupeKeys.length,
              keys.stream(partition),
              ...dedupeKeys,
              ...args,
            ),
        );
        order.push(indexes);
      }
      const results = (await pipelinePerSlot(redis, scripts)).flat();
      const out: (string | null)[] = new Array(events.length).fill(null);
      results.forEach(([err, reply], i) => {
        if (err) throw err.message.startsWith('BACKLOG') ? new StreamBacklogFullError(err.message) : err;
        (reply as string[]).forEach((first, j) => (out[order[i]![j]!] = first === '' ? null : first));
      });
      return out;
    },

    /**
     * Sets the dedupe keys of events stored in Postgres without the stream (degraded mode), unless
     * set already, so a retry arriving once Redis is back is answered as the duplicate it is
     * instead of being appended (and counted in the live windows) again.
     */
    async rememberClaims(tenantId: string, claims: readonly { messageId: string; eventId: string }[]): Promise<void> {
      if (claims.length === 0) return;
      // Each dedupe key lives under its partition's tag: on a Redis Cluster, one pipeline per partition.
      const byPartition = new Map<number, { messageId: string; eventId: string }[]>();
      for (const claim of claims) {
        const partition = keys.partitionOf(tenantId, claim.messageId);
        const list = byPartition.get(partition);
        if (list) list.push(claim);
        else byPartition.set(partition, [claim]);
      }
      const replies = await pipelinePerSlot(
        redis,
        [...byPartition].map(([partition, list]) => (pipeline) => {
          for (const { messageId, eventId } of list) {
            pipeline.set(keys.dedupe(partition, tenantId, messageId), eventId, 'EX', options.dedupeWindowS, 'NX');
          }
        }),
      );
      for (const [err] of replies.flat()) if (err) throw err;
    },
  };
}

export type EventStream = ReturnType<typeof createEventStream>;
