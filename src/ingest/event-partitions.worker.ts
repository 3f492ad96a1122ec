import type pg from 'pg';
import type { Logger } from '../observability/logger.js';
import { EventPartitionRepository } from './event-partition.repository.js';
import { EventRepository } from './event.repository.js';

const DAY_MS = 86_400_000;

export interface EventPartitionsWorkerOptions {
  /** Days of partitions kept ready ahead of today (UTC). Default 7. */
  readonly daysAhead?: number;
  /** How often to check. Default one hour: far more often than a day turns over. */
  readonly intervalMs?: number;
  /** Forget messageIds older than this (the dedupe window plus a day's margin); unset keeps them. */
  readonly messageIdRetentionS?: number;
}

/**
 * Keeps tomorrow's partitions of `events` in place before the first event of the day arrives,
 * so no day's rows pile up in the default partition. Every replica may run it: the SQL function
 * serializes itself with an advisory lock and skips partitions that exist.
 */
export function createEventPartitionsWorker(
  deps: { pool: pg.Pool; logger: Logger },
  { daysAhead = 7, intervalMs = 3_600_000, messageIdRetentionS }: EventPartitionsWorkerOptions = {},
) {
  const repository = new EventPartitionRepository(deps.pool);
  const events = new EventRepository(deps.pool);
  const log = deps.logger.child({ worker: 'event-partitions' });
  let timer: NodeJS.Timeout | undefined;
  let lastSuccess: Date | undefined;

  async function runOnce(now = new Date()): Promise<number> {
    const created = await repository.ensurePartitions(
      new Date(now.getTime() - DAY_MS),
      new Date(now.getTime() + daysAhead * DAY_MS),
    );
    if (created > 0) log.info({ created }, 'created event partitions');
    if (messageIdRetentionS !== undefined) {
      const purged = await events.purgeMessageIds(messageIdRetentionS);
      if (purged > 0) log.info({ purged }, 'forgot messageIds older than the dedupe window');
    }
    lastSuccess = now;
    return created;
  }

  const tick = () =>
    runOnce().catch((err: unknown) => log.warn({ err }, 'event partition maintenance failed; will retry'));

  return {
    runOnce,
    async start(): Promise<void> {
      await tick();
      timer = setInterval(tick, intervalMs);
      timer.unref();
    },
    async stop(): Promise<void> {
      clearInterval(timer);
    },
    readiness: () => ({ lastSuccess }),
  };
}
