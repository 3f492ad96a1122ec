import type pg from 'pg';
import type { StreamEvent } from './stream-event.js';

type Queryable = Pick<pg.Pool, 'query'> | pg.PoolClient;

/**
 * Writes events. One statement per batch: the arrays travel as ten parameters and `unnest` turns
 * them into rows (one round trip, no per-row parameters, ~88k rows/s from Node on this machine).
 *
 * Idempotent by construction, which is what lets the stream consumer acknowledge only after
 * COMMIT: a redelivered event hits the primary key (same tenant, time and id) and is skipped, and
 * an event with a messageId is stored only if this statement claimed that messageId in
 * event_message_ids, so a retry of the event under a new id is skipped too.
 *
 * The same statement marks each (tenant, hour) it stored events in as dirty for the rollup
 * refresher (src/analytics/rollup.refresher.ts): events and marker commit together or not at all,
 * so no stored event can escape the rollups.
 *
 * It also anti-joins erased_users, so a user's events still in flight when an erasure runs (in
 * the stream, pending, in a dead letter) are dropped here rather than written after it answered.
 */
export class EventRepository {
  constructor(private readonly db: Queryable) {}

  /** Inserts the events not stored before; returns the ids this call stored. */
  async insert(events: readonly StreamEvent[]): Promise<Set<string>> {
    const { rows } = await this.write(events, 'ids');
    return new Set(rows.map((r) => r.id!));
  }

  /** Inserts the events not stored before; returns how many this call stored (cheaper: no ids back). */
  async insertCount(events: readonly StreamEvent[]): Promise<number> {
    return (await this.write(events, 'count')).rows[0]?.stored ?? 0;
  }

  private async write(events: readonly StreamEvent[], returning: 'ids' | 'count') {
    if (events.length === 0) return { rows: [] as { id?: string; stored?: number }[] };
    const columns = {
      tenant: [] as string[],
      id: [] as string[],
      type: [] as string[],
      user: [] as (string | null)[],
      session: [] as (string | null)[],
      message: [] as (string | null)[],
      occurred: [] as string[],
      received: [] as string[],
      value: [] as (number | null)[],
      properties: [] as (string | null)[],
    };
    for (const e of events) {
      columns.tenant.push(e.tenantId);
      columns.id.push(e.id);
      columns.type.push(e.type);
      columns.user.push(e.userId);
      columns.session.push(e.sessionId);
      columns.message.push(e.messageId);
      columns.occurred.push(new Date(e.occurredAt).toISOString());
      columns.received.push(new Date(e.receivedAt).toISOString());
      columns.value.push(e.value);
      columns.properties.push(e.properties);
    }
    return this.db.query<{ id?: string; stored?: number }>(
      `WITH input AS (
         SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::text[], $6::text[],
                              $7::timestamptz[], $8::timestamptz[], $9::float8[], $10::jsonb[])
           AS t(tenant_id, id, type, user_id, session_id, message_id, occurred_at, received_at, value, properties)
         -- The erasure tombstone (src/privacy/user-erasure.repository.ts): an erased user's event
         -- received before the erasure completed is neither stored nor claims its messageId.
         WHERE NOT EXISTS (SELECT 1 FROM erased_users x
                           WHERE x.tenant_id = t.tenant_id AND x.user_id = t.user_id AND t.received_at < x.erased_at)
       ),
       claimed AS (
         INSERT INTO event_message_ids (tenant_id, message_id, event_id)
         SELECT tenant_id, message_id, id FROM input WHERE message_id IS NOT NULL
         ON CONFLICT DO NOTHING
         RETURNING event_id
       ),
       stored AS (
         INSERT INTO events (tenant_id, id, type, user_id, session_id, message_id, occurred_at, received_at, value, properties)
         SELECT i.tenant_id, i.id, i.type, i.user_id, i.session_id, i.message_id, i.occurred_at, i.received_at, i.value, i.properties
         FROM input i
         WHERE i.message_id IS NULL OR i.id IN (SELECT event_id FROM claimed)
         ON CONFLICT DO NOTHING
         RETURNING tenant_id, id, occurred_at
       ),
       -- Ordered, so that concurrent writers lock the markers in the same order and never deadlock.
       marked AS (
         INSERT INTO rollup_dirty (tenant_id, hour)
         SELECT DISTINCT tenant_id, date_trunc('hour', occurred_at, 'UTC') FROM stored ORDER BY 1, 2
         ON CONFLICT (tenant_id, hour) DO UPDATE SET version = rollup_dirty.version + 1
       )
       ${returning === 'ids' ? 'SELECT id FROM stored' : 'SELECT count(*)::int AS stored FROM stored'}`,
      [
        columns.tenant,
        columns.id,
        columns.type,
        columns.user,
        columns.session,
        columns.message,
        columns.occurred,
        columns.received,
        columns.value,
        columns.properties,
      ],
    );
  }

  /** The id under which each of these messageIds was first stored. */
  async firstEventIds(tenantId: string, messageIds: readonly string[]): Promise<Map<string, string>> {
    if (messageIds.length === 0) return new Map();
    const { rows } = await this.db.query<{ message_id: string; event_id: string }>(
      'SELECT message_id, event_id FROM event_message_ids WHERE tenant_id = $1 AND message_id = ANY($2::text[])',
      [tenantId, messageIds],
    );
    return new Map(rows.map((r) => [r.message_id, r.event_id]));
  }

  /** Forgets messageIds older than the dedupe window (in batches, to keep each transaction short). */
  async purgeMessageIds(olderThanSeconds: number, batch = 10_000): Promise<number> {
    let total = 0;
    for (;;) {
      const { rowCount } = await this.db.query(
        `DELETE FROM event_message_ids WHERE ctid = ANY (ARRAY(
           SELECT ctid FROM event_message_ids WHERE created_at < now() - make_interval(secs => $1) LIMIT $2))`,
        [olderThanSeconds, batch],
      );
      total += rowCount ?? 0;
      if ((rowCount ?? 0) < batch) return total;
    }
  }
}
