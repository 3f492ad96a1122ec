import { decodeCursor, encodeCursor, pageSize } from '../analytics/cursor.js';
import { BadUserInputError } from '../graphql/errors.js';
import { decodeStreamEvent } from '../ingest/stream-event.js';
import type { DeadLetterRecord, DeadLetterService } from '../ingest/dead-letter-replay.js';
import type { DeadLetterConnection, DeadLetterType } from './dead-letter.type.js';

/** Properties Postgres refused may not be JSON at all: then they are shown as the text they are. */
function propertiesOf(text: string | null): unknown {
  if (text === null) return null;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return text;
  }
}

/** The payload as a client reads an event; what cannot be decoded is shown raw. */
function eventOf(payload: string): unknown {
  try {
    const e = decodeStreamEvent(payload);
    return {
      id: e.id,
      type: e.type,
      userId: e.userId,
      sessionId: e.sessionId,
      messageId: e.messageId,
      timestamp: new Date(e.occurredAt).toISOString(),
      receivedAt: new Date(e.receivedAt).toISOString(),
      value: e.value,
      properties: propertiesOf(e.properties),
    };
  } catch {
    return { raw: payload };
  }
}

const nodeOf = (r: DeadLetterRecord): DeadLetterType => ({
  id: r.id,
  reason: r.reason,
  deliveries: r.deliveries,
  failedAt: r.failedAt,
  event: eventOf(r.payload),
});

/** deadLetters(first, after): a page of the tenant's dead letters, newest first, with the cursor of each. */
export async function deadLetterPage(
  service: DeadLetterService,
  tenantId: string,
  first: number | null | undefined,
  after: string | null | undefined,
): Promise<DeadLetterConnection> {
  const limit = pageSize(first);
  let before: { partition: number; entryId: string } | null = null;
  if (after) {
    const [partition, entryId] = decodeCursor(after, 2) as [string, string];
    if (!/^\d{1,4}$/.test(partition) || !/^\d+-\d+$/.test(entryId)) {
      throw new BadUserInputError('`after` is not a cursor returned by this field');
    }
    before = { partition: Number(partition), entryId };
  }
  const { records, hasMore, totalCount } = await service.list(tenantId, limit, before);
  const edges = records.map((r) => ({ cursor: encodeCursor([String(r.partition), r.entryId]), node: nodeOf(r) }));
  return { edges, pageInfo: { hasNextPage: hasMore, endCursor: edges.at(-1)?.cursor ?? null }, totalCount };
}
