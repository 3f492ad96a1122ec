import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import { EVENT_COPY_COLUMNS, encodeEventsCopy } from './event-copy.js';
import type { StreamEvent } from './stream-event.js';

type Queryable = Pick<pg.Pool, 'query'> | pg.PoolClient;

/** Connections that already have the session's COPY staging table (it lives as long as they do). */
const staged = new WeakSet<pg.PoolClient>();

/**
 * The statement that stores a batch from `input` (the unnest of the parameters, or the COPY
 * staging table): claims the messageIds, inserts the events whose messageId this statement
 * claimed (or that have none), skipping rows already stored, and marks their hours dirty.
 */
function storeFrom(input: string, returning: 'ids' | 'count'): string {
  return `WITH input AS (${input}),
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
       ${returning === 'ids' ? 'SELECT id FROM stored' : 'SELECT count(*)::int AS stored FROM stored'}`;
}

const UNNEST_INPUT = `SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::text[], $6::text[],
                              $7::timestamptz[], $8::timestamptz[], $9::float8[], $10::jsonb[])
           AS t(tenant_id, id, type, user_id, session_id, message_id, occurred_at, received_at, value, properties)`;
const UNNEST_STORE = { ids: storeFrom(UNNEST_INPUT, 'ids'), count: storeFrom(UNNEST_INPUT, 'count') };
const COPY_STORE = storeFrom('SELECT * FROM event_copy_batch', 'count');

/**
 * Writes events. One statement per batch: the arrays travel as ten parameters and `unnest` turns
 * them into rows (one round trip, no per-row parameters, ~88k rows/s from Node on this machine),
 * or the batch is COPied into a staging table first (`insertCountByCopy`, the persist worker's
 * default: no text parsing of the values on either side).
 *
 * Idempotent by construction, which is what lets the stream consumer acknowledge only after
 * COMMIT: a redelivered event hits the primary key (same tenant, time and id) and is skipped, and
 * an event with a messageId is stored only if this statement claimed that messageId in
 * event_message_ids, so a retry of the event under a new id is skipped too.
 *
 * The same statement marks each (tenant, hour) it stored events in as dirty for the rollup
 * refresher (src/analytics/rollup.refresher.ts): events and marker commit together or not at all,
 * so no stored event can escape the rollups.
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

  /**
   * insertCount by COPY: the batch goes in binary into a per-session staging table, and one
   * statement moves it into events with the same claims and skips as the unnest path, all in one
   * transaction. A crash or a refused row anywhere before COMMIT leaves nothing behind; the
   * staging table empties itself at COMMIT (ON COMMIT DELETE ROWS) and belongs to this session
   * alone, so concurrent writers never see each other's rows. Needs a pool (one client per call).
   */
  async insertCountByCopy(events: readonly StreamEvent[]): Promise<number> {
    if (events.length === 0) return 0;
    if (!(this.db instanceof pg.Pool)) throw new Error('insertCountByCopy needs a pool');
    const client = await this.db.connect();
    let broken: Error | undefined;
    try {
      if (!staged.has(client)) {
        // LIKE events: the staging table follows the events table's column types as migrations
        // change them. EXTERNAL: large properties are kept out of line but not compressed, since
        // the INSERT from here compresses them for events anyway: compressing them twice made
        // 30 KB events slower by COPY than by unnest.
        await client.query(
          `CREATE TEMP TABLE IF NOT EXISTS event_copy_batch (LIKE events) ON COMMIT DELETE ROWS;
           ALTER TABLE event_copy_batch ALTER COLUMN properties SET STORAGE EXTERNAL`,
        );
        staged.add(client);
      }
      await client.query('BEGIN');
      const copy = client.query(
        copyFrom(`COPY event_copy_batch (${EVENT_COPY_COLUMNS.join(', ')}) FROM STDIN (FORMAT binary)`),
      );
      await pipeline(Readable.from([encodeEventsCopy(events)]), copy);
      const { rows } = await client.query<{ stored: number }>(COPY_STORE);
      await client.query('COMMIT');
      return rows[0]?.stored ?? 0;
    } catch (err) {
      // Postgres answered (a refused row, say): the session is usable once rolled back. Anything
      // else may have left it inside the COPY protocol: discard the connection.
      const answered = typeof (err as { code?: unknown }).code === 'string';
      if (!answered) broken = err as Error;
      else await client.query('ROLLBACK').catch((rollbackErr: Error) => (broken = rollbackErr));
      throw err;
    } finally {
      client.release(broken);
    }
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
    return this.db.query<{ id?: string; stored?: number }>(UNNEST_STORE[returning], [
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
    ]);
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
