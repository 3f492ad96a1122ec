import type { ChainableCommander } from 'ioredis';
import type { Redis } from './create-redis.js';

/** A pipeline's replies: per command its error or its reply. */
export type PipelineReplies = [error: Error | null, reply: unknown][];

/**
 * Sends groups of commands, each group naming the keys of one hash tag (src/redis/keys.ts), and
 * answers each group's replies in order. On a single server every group goes in one pipeline, one
 * round trip. On a Cluster each group is a pipeline of its own, all sent at once: a Cluster
 * pipeline must keep its keys on one node, and which tags share a node changes with resharding,
 * so groups are never merged. A failed command is an error in its reply, not a rejection.
 */
export async function pipelinePerSlot(
  redis: Redis,
  groups: readonly ((pipeline: ChainableCommander) => void)[],
): Promise<PipelineReplies[]> {
  if (redis.isCluster) {
    return Promise.all(
      groups.map(async (add) => {
        const pipeline = redis.pipeline();
        add(pipeline);
        return ((await pipeline.exec()) ?? []) as PipelineReplies;
      }),
    );
  }
  const pipeline = redis.pipeline();
  const ends = groups.map((add) => {
    add(pipeline);
    return pipeline.length;
  });
  const replies = ((await pipeline.exec()) ?? []) as PipelineReplies;
  return ends.map((end, i) => replies.slice(i === 0 ? 0 : ends[i - 1], end));
}
