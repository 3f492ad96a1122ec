import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from '../observability/logger.js';
import { waitForReady, type Redis } from '../redis/create-redis.js';

export interface ConsumerLoopOptions {
  /** The loop's own connection: a blocking XREADGROUP holds it. */
  readonly redis: Redis;
  readonly running: () => boolean;
  /** How long an idle read blocks; also how long a disconnected loop waits before looking again. */
  readonly idleBlockMs: number;
  /** How often `maintain` runs (ensure the group, reclaim what dead consumers left pending). */
  readonly maintainEveryMs: number;
  readonly maintain: () => Promise<void>;
  /** One read and whatever it read handled. */
  readonly step: () => Promise<void>;
  readonly backoffMs: (failures: number) => number;
  /** Thrown by a step to end the loop at once (the worker is stopping). */
  readonly isStop?: (err: unknown) => boolean;
  readonly log: Logger;
  readonly failureMessage: string;
}

/**
 * The skeleton of one consumer of a stream group, shared by the persist and aggregate workers.
 * Commands fail fast while disconnected (nothing queues, so stopping never waits on one): the loop
 * waits for the connection in short steps instead. A failed step acknowledged nothing; the loop
 * backs off and reads again, logging the first failure and every twentieth.
 */
export async function runConsumerLoop(options: ConsumerLoopOptions): Promise<void> {
  let nextMaintainAt = 0;
  let failures = 0;
  while (options.running()) {
    if (options.redis.status !== 'ready') {
      await waitForReady(options.redis, options.idleBlockMs).catch(() => undefined);
      continue;
    }
    try {
      if (Date.now() >= nextMaintainAt) {
        await options.maintain();
        nextMaintainAt = Date.now() + options.maintainEveryMs;
      }
      await options.step();
      failures = 0;
    } catch (err) {
      if (options.isStop?.(err) || !options.running()) break;
      failures++;
      if (failures === 1 || failures % 20 === 0) options.log.warn({ err }, options.failureMessage);
      await sleep(options.backoffMs(failures));
    }
  }
}

/** Unique per process, so a restarted process never silently inherits a dead one's entries. */
export function consumerName(): string {
  return `${hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`;
}
