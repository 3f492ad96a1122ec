import type pg from 'pg';
import type { Logger } from '../observability/logger.js';
import { maskSecrets } from '../observability/mask-secrets.js';
import type { Metrics } from '../observability/metrics.js';
import type { AuditEntry } from './audit-entry.js';
import { AuditLogRepository, type AuditRowInput } from './audit-log.repository.js';

export interface AuditLogWriterOptions {
  /** When false, `record` discards every entry. AUDIT_LOG_ENABLED, default true. */
  readonly enabled: boolean;
  /** Rows per INSERT; a full batch is written without waiting for the interval. AUDIT_BATCH_SIZE, default 200. */
  readonly batchSize: number;
  /** How often queued rows are written. AUDIT_FLUSH_INTERVAL_MS, default 1000. */
  readonly flushIntervalMs: number;
  /** Rows held while Postgres fails; past it new rows are dropped (and counted). AUDIT_MAX_QUEUE, default 10000. */
  readonly maxQueue: number;
  /** Longest pause between retries while Postgres fails (the pause doubles from 100 ms). Default 30 s. */
  readonly retryMaxMs?: number;
  /** How long `stop` keeps retrying what is queued before it gives up and logs the loss. Default 5 s. */
  readonly stopTimeoutMs?: number;
}

export interface AuditLogWriterDeps {
  readonly pool: pg.Pool;
  readonly logger: Logger;
  readonly metrics: Metrics;
}

const FIRST_RETRY_MS = 100;
/** Data errors (22xxx) and constraint violations (23xxx): retrying the same row cannot succeed. */
const isRowError = (err: unknown) => /^2[23]/.test(String((err as { code?: unknown }).code ?? ''));

/**
 * The audit log's writer: `record` only queues (it never waits and never throws, so auditing
 * cannot slow or fail a request), and a loop writes the queue in batches of one INSERT each,
 * every AUDIT_FLUSH_INTERVAL_MS or as soon as a batch is full. While Postgres fails, rows stay
 * queued and the loop retries with capped exponential backoff; past AUDIT_MAX_QUEUE queued rows
 * the newest are refused, so what was recorded first is what survives an outage. `stop` writes
 * everything queued: app.stop calls it after Apollo has drained, so in-flight requests' rows are in.
 */
export function createAuditLogWriter(deps: AuditLogWriterDeps, options: AuditLogWriterOptions) {
  const repository = new AuditLogRepository(deps.pool);
  const { metrics } = deps;
  const log = deps.logger.child({ component: 'audit-log' });
  const retryMaxMs = options.retryMaxMs ?? 30_000;
  const stopTimeoutMs = options.stopTimeoutMs ?? 5_000;

  const queue: AuditEntry[] = [];
  let timer: NodeJS.Timeout | undefined;
  let draining: Promise<void> | undefined;
  let started = false;
  let stopping = false;
  let consecutiveFailures = 0;
  let failingSince: Date | null = null;
  let lastError: string | null = null;
  let droppedSinceReport = 0;

  const retryDelay = () => Math.min(FIRST_RETRY_MS * 2 ** Math.max(consecutiveFailures - 1, 0), retryMaxMs);

  function toRow(entry: AuditEntry): AuditRowInput {
    const { details, ...columns } = entry;
    return {
      ...columns,
      operationName: columns.operationName === null ? null : maskSecrets(columns.operationName),
      userAgent: columns.userAgent === null ? null : maskSecrets(columns.userAgent),
      // The same masking as log lines; it keeps serialized JSON valid.
      detailsJson: maskSecrets(JSON.stringify(details)),
    };
  }

  /** Writes rows one at a time after their batch was refused as invalid: only the bad ones are lost. */
  async function insertEach(rows: AuditRowInput[]): Promise<number> {
    let written = 0;
    for (const row of rows) {
      try {
        await repository.insert([row]);
        written++;
      } catch (err) {
        if (!isRowError(err)) throw err;
        metrics.auditEntries.inc({ result: 'dropped' });
        log.error({ err, action: row.action, requestId: row.requestId }, 'audit row refused by Postgres; dropped');
      }
    }
    return written;
  }

  /** Writes the oldest batch; false when Postgres failed (the batch stays queued). Never throws. */
  async function writeBatch(): Promise<boolean> {
    const batch = queue.slice(0, options.batchSize);
    const startedAt = performance.now();
    try {
      const rows = batch.map(toRow);
      let written = rows.length;
      try {
        await repository.insert(rows);
      } catch (err) {
        if (!isRowError(err)) throw err;
        written = await insertEach(rows);
      }
      // Only appends happen meanwhile, so the batch is still the queue's head.
      queue.splice(0, batch.length);
      metrics.auditQueueLength.set(queue.length);
      metrics.auditEntries.inc({ result: 'written' }, written);
      metrics.auditFlushDuration.observe((performance.now() - startedAt) / 1000);
      if (failingSince) log.info({ failingSince, queued: queue.length }, 'audit log writes recovered');
      consecutiveFailures = 0;
      failingSince = null;
      lastError = null;
      return true;
    } catch (err) {
      consecutiveFailures++;
      failingSince ??= new Date();
      lastError = err instanceof Error ? err.message : String(err);
      metrics.auditFlushFailures.inc();
      log.warn({ err, queued: queue.length, retryInMs: retryDelay() }, 'audit log write failed; will retry');
      return false;
    }
  }

  /** Writes batches until the queue is empty or a write fails; one drain at a time. */
  function drain(): Promise<void> {
    if (!draining) {
      // Cleared in a later tick: an empty queue would otherwise clear it before it is even set.
      draining = (async () => {
        while (queue.length > 0 && (await writeBatch()));
      })().finally(() => {
        draining = undefined;
      });
    }
    return draining;
  }

  function schedule(delayMs: number): void {
    if (stopping) return;
    clearTimeout(timer);
    timer = setTimeout(() => {
      timer = undefined;
      void drain().then(() => schedule(consecutiveFailures > 0 ? retryDelay() : options.flushIntervalMs));
    }, delayMs);
    // A process with nothing else to do may exit; main.ts stops the writer on signals.
    timer.unref();
  }

  return {
    /** Queues an entry. Never blocks, never throws; drops (and counts) it when the queue is full. */
    record(entry: AuditEntry): void {
      if (!options.enabled) return;
      if (queue.length >= options.maxQueue) {
        metrics.auditEntries.inc({ result: 'dropped' });
        if (droppedSinceReport++ === 0) {
          log.error(
            { maxQueue: options.maxQueue, action: entry.action },
            'audit queue full: new audit rows are dropped until Postgres catches up',
          );
        }
        return;
      }
      if (droppedSinceReport > 0) {
        log.warn({ dropped: droppedSinceReport }, 'audit queue has room again; rows were dropped meanwhile');
        droppedSinceReport = 0;
      }
      queue.push(entry);
      metrics.auditQueueLength.set(queue.length);
      if (started && !stopping && consecutiveFailures === 0 && queue.length >= options.batchSize) void drain();
    },

    async start(): Promise<void> {
      if (!options.enabled || started) return;
      started = true;
      schedule(options.flushIntervalMs);
    },

    /** Writes everything queued (retrying for up to stopTimeoutMs while Postgres fails), then stops. */
    async stop(): Promise<void> {
      stopping = true;
      clearTimeout(timer);
      await draining;
      const deadline = Date.now() + stopTimeoutMs;
      while (queue.length > 0) {
        if (await writeBatch()) continue;
        const left = deadline - Date.now();
        if (left <= 0) break;
        await new Promise((resolve) => setTimeout(resolve, Math.min(retryDelay(), left)));
      }
      if (queue.length > 0) {
        metrics.auditEntries.inc({ result: 'dropped' }, queue.length);
        log.error({ lost: queue.length, lastError }, 'audit rows could not be written before shutdown; they are lost');
        queue.length = 0;
        metrics.auditQueueLength.set(0);
      }
    },

    /** For /ready: what is waiting, and since when writes have been failing (null when they are not). */
    readiness() {
      return { queued: queue.length, failingSince, lastError };
    },
  };
}

export type AuditLogWriter = ReturnType<typeof createAuditLogWriter>;
