/**
 * A partner's ingest script: sends events in batches with recordEvents, each event with a
 * messageId, each attempt with sentAt, and retries a batch on RATE_LIMITED and SERVICE_UNAVAILABLE
 * (and on network failures) after the Retry-After the gateway gave, or else after an exponential
 * backoff with jitter.
 *
 * Because every event carries a messageId that stays the same across retries, a retry after an
 * ambiguous failure (a timeout after the gateway had accepted the batch) is answered as duplicates
 * instead of storing the events twice; sentAt is set afresh on every attempt, so the gateway can
 * correct the events' timestamps for this machine's clock skew.
 *
 *   API_KEY=agk_... node dist/examples/partner-ingest.js --url http://127.0.0.1:4000 --events 5000 --batch 500
 *
 * The last line printed is a JSON report: { batches, accepted, duplicates, rejected, retries }.
 */
import { randomUUID } from 'node:crypto';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { print } from 'graphql';
import { PartnerRecordEventsDocument, type EventInput, type PartnerRecordEventsMutation } from './generated/graphql.js';

export interface IngestOptions {
  /** The gateway's base URL, e.g. http://127.0.0.1:4000. */
  readonly url: string;
  /** An API key with the events:write scope. */
  readonly key: string;
  readonly events: readonly EventInput[];
  /** Events per recordEvents call (the gateway accepts up to INGEST_MAX_BATCH, 1000 by default). */
  readonly batchSize?: number;
  /** Attempts per batch before giving up. Default 10. */
  readonly maxAttempts?: number;
  /** Backoff without a Retry-After: 200 ms doubling per attempt, up to this. Default 30 s. */
  readonly maxBackoffMs?: number;
  readonly log?: (line: string) => void;
}

export interface IngestReport {
  batches: number;
  accepted: number;
  duplicates: number;
  /** Events the gateway refused as invalid (not retried: sending them again would not help). */
  rejected: number;
  retries: number;
}

const RETRYABLE = new Set(['RATE_LIMITED', 'SERVICE_UNAVAILABLE']);

/** Thrown for an answer no retry can fix (a bad key, a missing scope, a batch too large). */
export class IngestError extends Error {
  constructor(
    message: string,
    readonly code: string | undefined,
  ) {
    super(message);
    this.name = 'IngestError';
  }
}

interface GraphqlErrors {
  errors?: Array<{ message: string; extensions?: { code?: string; retryAfter?: number } }>;
}

/** Gives every event a messageId (kept across retries) unless it brought its own. */
export function withMessageIds(events: readonly EventInput[], runId: string = randomUUID()): EventInput[] {
  return events.map((event, i) => ({ ...event, messageId: event.messageId ?? `${runId}:${i}` }));
}

export async function ingest(options: IngestOptions): Promise<IngestReport> {
  const batchSize = options.batchSize ?? 500;
  const maxAttempts = options.maxAttempts ?? 10;
  const maxBackoffMs = options.maxBackoffMs ?? 30_000;
  const log = options.log ?? (() => undefined);
  const report: IngestReport = { batches: 0, accepted: 0, duplicates: 0, rejected: 0, retries: 0 };

  for (let start = 0; start < options.events.length; start += batchSize) {
    const batch = options.events.slice(start, start + batchSize);
    for (let attempt = 1; ; attempt++) {
      const outcome = await send(options.url, options.key, batch);
      if (outcome.kind === 'ok') {
        const { accepted, duplicates, errors } = outcome.payload.recordEvents;
        report.accepted += accepted;
        report.duplicates += duplicates;
        report.rejected += errors.length;
        for (const e of errors) log(`event ${start + e.index} rejected: ${e.code} ${e.message}`);
        break;
      }
      if (outcome.kind === 'fatal') throw new IngestError(outcome.message, outcome.code);
      if (attempt >= maxAttempts)
        throw new IngestError(`gave up after ${attempt} attempts: ${outcome.message}`, outcome.code);
      const waitMs = outcome.retryAfterMs ?? backoff(attempt, maxBackoffMs);
      log(`batch at ${start}: ${outcome.message}; retrying in ${waitMs} ms (attempt ${attempt + 1})`);
      report.retries++;
      await new Promise((resolve) => setTimeout(resolve, waitMs));
    }
    report.batches++;
  }
  return report;
}

type Outcome =
  | { kind: 'ok'; payload: PartnerRecordEventsMutation }
  | { kind: 'retry'; message: string; code?: string; retryAfterMs?: number }
  | { kind: 'fatal'; message: string; code?: string };

async function send(url: string, key: string, events: readonly EventInput[]): Promise<Outcome> {
  let response: Response;
  try {
    response = await fetch(`${url}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
      // sentAt is this attempt's clock: the gateway shifts timestamps by (receivedAt - sentAt).
      body: JSON.stringify({
        query: print(PartnerRecordEventsDocument),
        variables: { events, sentAt: new Date().toISOString() },
      }),
      signal: AbortSignal.timeout(30_000),
    });
  } catch (err) {
    return { kind: 'retry', message: `request failed: ${(err as Error).message}` };
  }
  const body = (await response.json().catch(() => ({}))) as GraphqlErrors & { data?: PartnerRecordEventsMutation };
  const error = body.errors?.[0];
  const code = error?.extensions?.code;
  if (!error && body.data) return { kind: 'ok', payload: body.data };
  const message = error ? `${code ?? 'error'}: ${error.message}` : `HTTP ${response.status}`;
  if ((code && RETRYABLE.has(code)) || response.status === 429 || response.status === 503) {
    return { kind: 'retry', message, code, retryAfterMs: retryAfterMs(response.headers.get('retry-after'), error) };
  }
  return { kind: 'fatal', message, code };
}

/** Retry-After in seconds or as an HTTP date; else the error's own retryAfter (seconds). */
export function retryAfterMs(
  header: string | null,
  error?: { extensions?: { retryAfter?: number } },
  now = Date.now(),
): number | undefined {
  if (header) {
    const seconds = Number(header);
    if (Number.isFinite(seconds) && seconds >= 0) return Math.ceil(seconds * 1000);
    const date = Date.parse(header);
    if (!Number.isNaN(date)) return Math.max(0, date - now);
  }
  const fromBody = error?.extensions?.retryAfter;
  return typeof fromBody === 'number' && fromBody >= 0 ? fromBody * 1000 : undefined;
}

/** Full jitter: a random wait up to 200 ms × 2^(attempt-1), capped. */
function backoff(attempt: number, maxMs: number): number {
  return Math.round(Math.random() * Math.min(maxMs, 200 * 2 ** (attempt - 1)));
}

/** Synthetic events for the command line: `count` events of `type`, a few users, a value each. */
function syntheticEvents(count: number, type: string): EventInput[] {
  const now = Date.now();
  return Array.from({ length: count }, (_, i) => ({
    type,
    userId: `user-${i % 50}`,
    sessionId: `session-${i % 200}`,
    value: Math.round(Math.random() * 10_000) / 100,
    timestamp: new Date(now - (count - i)).toISOString(),
    properties: { source: 'partner-ingest example' },
  }));
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      url: { type: 'string', default: 'http://127.0.0.1:4000' },
      events: { type: 'string', default: '1000' },
      batch: { type: 'string', default: '500' },
      type: { type: 'string', default: 'partner.event' },
      // The same run id sends the same messageIds: running again is then answered as duplicates.
      'run-id': { type: 'string' },
      quiet: { type: 'boolean', default: false },
    },
  });
  // From the environment, not an argument, so the key stays out of `ps` and shell history.
  const key = process.env.API_KEY;
  if (!key) throw new Error('set API_KEY to a key with the events:write scope');
  const events = withMessageIds(syntheticEvents(Number(values.events), values.type!), values['run-id']);
  const report = await ingest({
    url: values.url!,
    key,
    events,
    batchSize: Number(values.batch),
    log: values.quiet ? undefined : (line) => console.error(line),
  });
  console.log(JSON.stringify(report));
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((err: unknown) => {
    console.error(err instanceof Error ? err.message : err);
    process.exitCode = 1;
  });
}
