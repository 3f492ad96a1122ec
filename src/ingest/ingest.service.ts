import type pg from 'pg';
import type { Config } from '../config/config.js';
import type { RequestDeadline } from '../db/request-deadline.js';
import { ErrorCode } from '../graphql/error-codes.js';
import { PayloadTooLargeError, ServiceUnavailableError } from '../graphql/errors.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import type { Redis } from '../redis/create-redis.js';
import { StreamBacklogFullError, type EventStream } from './event-stream.js';
import { EventRepository } from './event.repository.js';
import { normalizeEvent, type EventInputLike } from './event-validation.js';
import type { StreamEvent } from './stream-event.js';

/** Degraded-mode claims remembered for their dedupe keys (about 200 bytes each). */
const MAX_DEGRADED_CLAIMS = 1_000_000;

export interface EventError {
  readonly index: number;
  readonly code: string;
  readonly message: string;
}

export interface RecordResult {
  readonly accepted: number;
  readonly duplicates: number;
  /** Per input position: the event's id (the first event's id for a duplicate), null when rejected. */
  readonly ids: (string | null)[];
  readonly duplicate: boolean[];
  readonly errors: EventError[];
}

export interface IngestDeps {
  readonly pool: pg.Pool;
  readonly redis: Redis;
  readonly stream: EventStream;
  readonly config: Pick<Config, 'ingest'>;
  readonly metrics: Metrics;
  readonly logger: Logger;
}

/**
 * Accepts events for a tenant. The answer is given only once the accepted events are durable
 * somewhere: in the Redis stream (INGEST_ACK=stream, the default), or in Postgres when Redis
 * cannot be reached (degraded mode) or when INGEST_ACK=postgres. When neither can take them,
 * nothing is acknowledged and the caller gets SERVICE_UNAVAILABLE to retry.
 */
export class IngestService {
  private readonly events: EventRepository;
  private readonly log: Logger;

  constructor(private readonly deps: IngestDeps) {
    this.events = new EventRepository(deps.pool);
    this.log = deps.logger.child({ component: 'ingest' });
  }

  /**
   * A request's deadline is checked once, before anything is stored: past it the whole batch is
   * answered SERVICE_UNAVAILABLE with nothing written. Once storing has begun it is not cut
   * (its statements stay under statement_timeout, db/pool.ts): an answer given at the deadline
   * while an XADD or a COMMIT went on could only say "retry" about events that were taken, and
   * a retry duplicates those without a messageId. So a batch is acknowledged whole, or refused
   * whole for the client to retry with the same messageIds.
   */
  async record(
    tenantId: string,
    inputs: readonly EventInputLike[],
    sentAt?: Date,
    deadline?: RequestDeadline,
  ): Promise<RecordResult> {
    const { maxBatch } = this.deps.config.ingest;
    if (inputs.length > maxBatch) {
      throw new PayloadTooLargeError(`At most ${maxBatch} events per request; this one has ${inputs.length}`);
    }
    const receipt = { tenantId, receivedAt: Date.now(), sentAt: sentAt?.getTime() };
    const ids: (string | null)[] = new Array(inputs.length).fill(null);
    const duplicate: boolean[] = new Array(inputs.length).fill(false);
    const errors: EventError[] = [];

    // Validate; a repeated messageId inside this request points at its first occurrence.
    const fresh: StreamEvent[] = [];
    const freshIndex: number[] = [];
    const firstInRequest = new Map<string, number>();
    const repeats: Array<[index: number, firstIndex: number]> = [];
    inputs.forEach((input, index) => {
      const result = normalizeEvent(input, receipt);
      if (!result.ok) {
        errors.push({ index, code: ErrorCode.BAD_USER_INPUT, message: result.message });
        return;
      }
      const { messageId } = result.event;
      if (messageId !== null) {
        const first = firstInRequest.get(messageId);
        if (first !== undefined) return void repeats.push([index, first]);
        firstInRequest.set(messageId, index);
      }
      fresh.push(result.event);
      freshIndex.push(index);
    });

    deadline?.check();
    const firstIds = await this.store(tenantId, fresh);
    firstIds.forEach((firstId, i) => {
      const index = freshIndex[i]!;
      ids[index] = firstId ?? fresh[i]!.id;
      duplicate[index] = firstId !== null;
    });
    for (const [index, first] of repeats) {
      ids[index] = ids[first]!;
      duplicate[index] = true;
    }

    const duplicates = duplicate.filter(Boolean).length;
    const accepted = inputs.length - errors.length - duplicates;
    const counter = this.deps.metrics.eventsIngested;
    if (accepted) counter.inc({ outcome: 'accepted' }, accepted);
    if (duplicates) counter.inc({ outcome: 'duplicate' }, duplicates);
    if (errors.length) counter.inc({ outcome: 'rejected' }, errors.length);
    return { accepted, duplicates, ids, duplicate, errors };
  }

  /** Resolves, per event, null when newly accepted or the first event's id when a duplicate. */
  private async store(tenantId: string, events: StreamEvent[]): Promise<(string | null)[]> {
    if (events.length === 0) return [];
    if (this.deps.config.ingest.ack === 'postgres') {
      const firstIds = await this.storeInPostgres(tenantId, events);
      // The live aggregates still read the stream; the persister skips messages marked persisted.
      const accepted = events.filter((_, i) => firstIds[i] === null);
      await this.deps.stream.enqueue(tenantId, accepted, true).catch((err: unknown) => {
        this.log.warn({ err }, 'events stored in Postgres but not published to the stream');
      });
      return firstIds;
    }
    if (this.deps.redis.status === 'ready') {
      try {
        await this.rememberDegradedClaims();
        const firstIds = await this.deps.stream.enqueue(tenantId, events);
        this.setDegraded(false);
        return firstIds;
      } catch (err) {
        if (err instanceof StreamBacklogFullError) {
          this.log.warn('event stream backlog is full; refusing events');
          throw new ServiceUnavailableError('Ingestion is backlogged; retry shortly');
        }
        // The script may have run before the connection failed; writing the same events (same ids
        // and times) to Postgres is still safe, since both paths are idempotent on them.
        this.log.warn({ err }, 'redis append failed; writing events to Postgres directly');
      }
    }
    this.setDegraded(true);
    const firstIds = await this.storeInPostgres(tenantId, events);
    this.noteDegradedClaims(tenantId, events, firstIds);
    return firstIds;
  }

  /**
   * messageIds this replica claimed in Postgres while Redis was unreachable, by tenant: their
   * dedupe keys are set before its next append to the stream (rememberDegradedClaims). Bounded;
   * past the bound, a retry of the oldest is stored once still (Postgres' claim), but may be
   * answered as accepted and counted twice in the live windows.
   */
  private readonly degradedClaims = new Map<string, Map<string, string>>();
  private degradedClaimCount = 0;
  private remembering: Promise<void> | undefined;

  private noteDegradedClaims(tenantId: string, events: readonly StreamEvent[], firstIds: (string | null)[]): void {
    events.forEach((e, i) => {
      if (e.messageId === null || firstIds[i] !== null) return;
      if (this.degradedClaimCount >= MAX_DEGRADED_CLAIMS) return;
      let claims = this.degradedClaims.get(tenantId);
      if (!claims) this.degradedClaims.set(tenantId, (claims = new Map()));
      if (!claims.has(e.messageId)) this.degradedClaimCount++;
      claims.set(e.messageId, e.id);
    });
  }

  /** Sets the dedupe keys of what was claimed in degraded mode; every caller waits for the one run. */
  private rememberDegradedClaims(): Promise<void> {
    if (this.degradedClaimCount === 0) return Promise.resolve();
    this.remembering ??= (async () => {
      try {
        for (const [tenantId, claims] of this.degradedClaims) {
          const batch = [...claims].map(([messageId, eventId]) => ({ messageId, eventId }));
          for (let i = 0; i < batch.length; i += 10_000) {
            await this.deps.stream.rememberClaims(tenantId, batch.slice(i, i + 10_000));
          }
          // Only what was sent: claims noted meanwhile stay for the next run.
          for (const { messageId, eventId } of batch) {
            if (claims.get(messageId) === eventId) {
              claims.delete(messageId);
              this.degradedClaimCount--;
            }
          }
          if (claims.size === 0) this.degradedClaims.delete(tenantId);
        }
      } finally {
        this.remembering = undefined;
      }
    })();
    return this.remembering;
  }

  private async storeInPostgres(tenantId: string, events: StreamEvent[]): Promise<(string | null)[]> {
    let stored: Set<string>;
    try {
      stored = await this.events.insert(events);
    } catch (err) {
      this.log.error({ err }, 'could not store events in Postgres');
      throw new ServiceUnavailableError('Events cannot be stored right now; nothing was accepted; retry shortly');
    }
    const duplicateMessages = events.filter((e) => !stored.has(e.id) && e.messageId !== null).map((e) => e.messageId!);
    const firstIds = await this.events
      .firstEventIds(tenantId, duplicateMessages)
      .catch(() => new Map<string, string>());
    return events.map((e) => (stored.has(e.id) || e.messageId === null ? null : (firstIds.get(e.messageId) ?? e.id)));
  }

  private degradedSince: number | undefined;

  private setDegraded(degraded: boolean): void {
    if (degraded && this.degradedSince === undefined)
      this.log.warn('ingestion is in degraded mode: writing to Postgres directly');
    if (!degraded && this.degradedSince !== undefined) this.log.info('ingestion is back on the Redis stream');
    this.degradedSince = degraded ? (this.degradedSince ?? Date.now()) : undefined;
    this.deps.metrics.ingestDegraded.set(degraded ? 1 : 0);
  }

  /** For /ready: since when the last writes have had to bypass Redis, if they have. */
  degradedSinceDate(): Date | undefined {
    return this.degradedSince === undefined ? undefined : new Date(this.degradedSince);
  }
}
