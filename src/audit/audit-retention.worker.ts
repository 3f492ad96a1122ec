import type pg from 'pg';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import { AuditRetentionRepository } from './audit-retention.repository.js';

export interface AuditRetentionOptions {
  /** Days of audit rows kept (AUDIT_RETENTION_DAYS); 0 keeps everything and the worker does nothing. */
  readonly retentionDays: number;
  /** How often to purge. Default one hour. */
  readonly intervalMs?: number;
  /** Rows per purge call, each its own short transaction. Default 10,000. */
  readonly batchSize?: number;
}

/**
 * Deletes audit rows past AUDIT_RETENTION_DAYS. Every worker replica may run it: concurrent
 * purges delete disjoint or already-deleted rows, and each call is a short transaction.
 */
export function createAuditRetentionWorker(
  deps: { pool: pg.Pool; logger: Logger; metrics: Metrics },
  { retentionDays, intervalMs = 3_600_000, batchSize = 10_000 }: AuditRetentionOptions,
) {
  const repository = new AuditRetentionRepository(deps.pool);
  const log = deps.logger.child({ worker: 'audit-retention' });
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<unknown> | undefined;
  let stopped = false;
  let lastRun: { at: Date; purged: number } | undefined;

  /** Purges until no row past the retention is left; returns how many went. */
  async function runOnce(): Promise<number> {
    if (retentionDays <= 0) return 0;
    let purged = 0;
    for (;;) {
      const n = await repository.purgeBatch(retentionDays, batchSize);
      purged += n;
      deps.metrics.auditRowsPurged.inc(n);
      if (n < batchSize || stopped) break;
    }
    lastRun = { at: new Date(), purged };
    if (purged > 0) log.info({ purged, retentionDays }, 'deleted audit rows past AUDIT_RETENTION_DAYS');
    return purged;
  }

  const tick = () =>
    (running = runOnce().catch((err: unknown) => log.warn({ err }, 'audit retention failed; will retry')));

  return {
    runOnce,
    async start(): Promise<void> {
      if (retentionDays <= 0) return;
      stopped = false;
      await tick();
      timer = setInterval(tick, intervalMs);
      timer.unref();
    },
    async stop(): Promise<void> {
      stopped = true;
      clearInterval(timer);
      await running;
    },
    readiness: () => ({ retentionDays, lastRun: lastRun ?? null }),
  };
}
