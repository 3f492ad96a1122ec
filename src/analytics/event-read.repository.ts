import { createHash } from 'node:crypto';
import type pg from 'pg';
import { msAbove, NewestFirstPage, newestFirstWindows } from '../db/newest-first-page.js';
import { MAX_FUTURE_MS } from '../ingest/event-validation.js';

type Queryable = Pick<pg.Pool, 'query'>;

export interface EventRow {
  readonly id: string;
  readonly type: string;
  readonly userId: string | null;
  readonly sessionId: string | null;
  readonly timestamp: Date;
  readonly receivedAt: Date;
  readonly value: number | null;
  readonly properties: Record<string, unknown> | null;
  /** occurred_at in epoch microseconds, exact (a Date keeps milliseconds only): the cursor's key. */
  readonly timeUs: string;
}

export interface EventQuery {
  readonly type?: string | null;
  readonly userId?: string | null;
  readonly sessionId?: string | null;
  readonly from?: Date | null;
  readonly to?: Date | null;
  /** Keyset position: rows strictly older than (timeUs, id). */
  readonly before?: { readonly timeUs: string; readonly id: string } | null;
  readonly limit: number;
}

const COLUMNS = `id, type, user_id, session_id, occurred_at, received_at, value, properties,
  (extract(epoch FROM occurred_at) * 1000000)::bigint::text AS time_us`;

interface Row {
  id: string;
  type: string;
  user_id: string | null;
  session_id: string | null;
  occurred_at: Date;
  received_at: Date;
  value: number | null;
  properties: Record<string, unknown> | null;
  time_us: string;
}

/** When the user rollup saw a user's first and last events. */
export interface UserSeen {
  readonly first: Date;
  readonly last: Date;
  /** How many events the user rollup counts for the user, when known. */
  readonly events?: number;
}

/** The narrowest first window latestByUsers reads. */
const MIN_WINDOW_MS = 3_600_000;

/** How far before a user's last known event latestByUsers looks first. */
const RECENT_WINDOW_MS = 7 * 86_400_000;

/**
 * No stored event is later than its receipt plus MAX_FUTURE_MS (src/ingest/event-validation.ts
 * clamps it), so a page without a cursor or `to` starts there; the slack covers clocks of other
 * gateway processes that run ahead of this one.
 */
const CLOCK_SLACK_MS = 5 * 60_000;

/** Statement texts are a bounded set (page() combines at most six filters and two window shapes), so this stays small. */
const STATEMENT_NAMES = new Map<string, string>();

const toEvent = (r: Row): EventRow => ({
  id: r.id,
  type: r.type,
  userId: r.user_id,
  sessionId: r.session_id,
  timestamp: r.occurred_at,
  receivedAt: r.received_at,
  value: r.value,
  properties: r.properties,
  timeUs: r.time_us,
});

/**
 * Reads of the events table for the query API. Newest first everywhere: ORDER BY occurred_at DESC,
 * id DESC, which the primary key (tenant_id, occurred_at, id) and the (tenant_id, user_id |
 * type | session_id, occurred_at DESC) indexes serve as backward or forward index scans, merged
 * across the day partitions the time range leaves.
 */
export class EventReadRepository {
  /**
   * `db` plans each statement for its parameters. `planned` should be a pool made with
   * `genericPlans` (src/db/pool.ts): the statements sent to it are named, so each connection
   * plans them once, and planning is most of what they cost.
   */
  constructor(
    private readonly db: Queryable,
    private readonly planned: Queryable = db,
  ) {}

  /**
   * A named statement on the generic-plan pool: the name follows the text, so each distinct text
   * is prepared once per connection. Only for statements whose best plan does not depend on
   * their values: an ORDER BY ... LIMIT walk, or a LATERAL subquery with a LIMIT (which the
   * planner cannot flatten into a join).
   */
  private run(text: string, values: unknown[]): Promise<pg.QueryResult<Row>> {
    let name = STATEMENT_NAMES.get(text);
    if (name === undefined) {
      name = `events_read_${createHash('sha1').update(text).digest('hex').slice(0, 20)}`;
      STATEMENT_NAMES.set(text, name);
    }
    return this.planned.query<Row>({ name, text, values });
  }

  /**
   * Events by id. An id is a UUIDv7 whose first 48 bits are the event time in milliseconds, so
   * the lookup is bounded to that millisecond range: Postgres prunes to one partition and probes
   * its primary key. Planned for its values, never generically: ids spread over months make a
   * wide [$4, $5), and a generic plan (not knowing how wide) hash-joins the keys against a scan
   * of every row in it, where a plan for the values probes the primary key once per id.
   */
  async byIds(tenantId: string, ids: readonly string[]): Promise<EventRow[]> {
    const times = ids.map(eventTimeOfId);
    const { rows } = await this.db.query<Row>(
      `SELECT ${COLUMNS} FROM events e
       JOIN unnest($2::timestamptz[], $3::uuid[]) AS k(at, event_id)
         ON e.occurred_at >= k.at AND e.occurred_at < k.at + interval '1 millisecond' AND e.id = k.event_id
       WHERE e.tenant_id = $1 AND e.occurred_at >= $4 AND e.occurred_at < $5`,
      [
        tenantId,
        times,
        ids,
        new Date(Math.min(...times.map((t) => t.getTime()))),
        new Date(Math.max(...times.map((t) => t.getTime())) + 1),
      ],
    );
    return rows.map(toEvent);
  }

  /**
   * One page of events matching the filter (limit rows; ask for one more to learn hasNextPage).
   *
   * A single newest-first walk opens every day partition its range leaves (Merge Append) before
   * it returns a row. So the page is read in windows of recent days first (newestFirstWindows,
   * src/db/newest-first-page.ts), each asking only for the rows still missing: a first page of a
   * tenant with recent events reads today's partition alone. The windows' bounds are parameters,
   * which the generic plan prunes to when it starts.
   */
  async page(tenantId: string, query: EventQuery): Promise<EventRow[]> {
    let top = Date.now() + MAX_FUTURE_MS + CLOCK_SLACK_MS;
    if (query.to) top = Math.min(top, query.to.getTime());
    if (query.before) top = Math.min(top, msAbove(query.before.timeUs));
    const rows: EventRow[] = [];
    for (const window of newestFirstWindows(top, query.from ?? null)) {
      const page = new NewestFirstPage(tenantId);
      if (query.type) page.where('type = ?', query.type);
      if (query.userId) page.where('user_id = ?', query.userId);
      if (query.sessionId) page.where('session_id = ?', query.sessionId);
      if (query.from) page.where('occurred_at >= ?', query.from);
      if (query.to) page.where('occurred_at < ?', query.to);
      page.within(window.from, window.to);
      if (query.before) page.before(query.before, 'uuid');
      const { where, limit } = page.finish(query.limit - rows.length);
      const result = await this.run(
        `SELECT ${COLUMNS} FROM events WHERE ${where}
         ORDER BY occurred_at DESC, id DESC LIMIT ${limit}`,
        page.params,
      );
      for (const row of result.rows) rows.push(toEvent(row));
      if (rows.length >= query.limit) break;
    }
    return rows;
  }

  /**
   * The latest `perUser` events of each user, for all users in one statement: a LATERAL subquery
   * per user walks (tenant_id, user_id, occurred_at DESC) and stops after `perUser` rows.
   *
   * Each day partition has its own index, and a newest-first walk opens every one of them (Merge
   * Append) before it returns a row: ~100 index probes per user at 90 days. When the caller knows
   * when a user was first and last seen and how many events it has (the user rollup), the walk
   * starts at a window before `last` sized to the user's rate (firstWindowStart below; events
   * after `last` are still found), which the generic plan prunes per user to the last partition
   * or few. Only users that window leaves short of `perUser` rows and that had events before it
   * (`first` is older) are read again, over a wider window and then from `first` on (at most two
   * more statements). So a late event stamped before the window of a user whose known history
   * fits in it shows here once the refresher has folded it into the rollup, as it does in the
   * user's totals.
   */
  async latestByUsers(
    tenantId: string,
    users: readonly { readonly id: string; readonly seen?: UserSeen | null }[],
    perUser: number,
    type: string | null,
  ): Promise<Map<string, EventRow[]>> {
    let pending = users.map((u) => ({ id: u.id, seen: u.seen, since: firstWindowStart(u.seen, perUser, type) }));
    const byUser = await this.latestSince(tenantId, pending, perUser, type);
    // Users the window left short of `perUser` rows that had events before it are read again from
    // a window 16 times as long (at least RECENT_WINDOW_MS), then from their first event on: at
    // most three statements, the later ones for ever fewer users.
    for (let step = 0; step < 2; step++) {
      pending = pending
        .filter((u) => u.seen && u.since && u.seen.first < u.since && byUser.get(u.id)!.length < perUser)
        .map((u) => {
          const last = u.seen!.last.getTime();
          const wider = last - Math.max(16 * (last - u.since!.getTime()), RECENT_WINDOW_MS);
          const since = step === 0 && wider > u.seen!.first.getTime() ? new Date(wider) : u.seen!.first;
          return { ...u, since };
        });
      if (pending.length === 0) break;
      for (const [id, rows] of await this.latestSince(tenantId, pending, perUser, type)) byUser.set(id, rows);
    }
    return byUser;
  }

  private async latestSince(
    tenantId: string,
    users: readonly { readonly id: string; readonly since: Date | null }[],
    perUser: number,
    type: string | null,
  ): Promise<Map<string, EventRow[]>> {
    const { rows } = await this.run(
      `SELECT e.* FROM unnest($2::text[], $5::timestamptz[]) AS u(user_id, since)
       CROSS JOIN LATERAL (
         SELECT ${COLUMNS} FROM events
         WHERE tenant_id = $1 AND user_id = u.user_id AND occurred_at >= COALESCE(u.since, '-infinity')
           AND ($4::text IS NULL OR type = $4)
         ORDER BY occurred_at DESC, id DESC LIMIT $3
       ) e`,
      [tenantId, users.map((u) => u.id), perUser, type, users.map((u) => u.since)],
    );
    const byUser = new Map<string, EventRow[]>(users.map((u) => [u.id, []]));
    for (const row of rows) byUser.get(row.user_id!)?.push(toEvent(row));
    return byUser;
  }
}

/**
 * Where latestByUsers starts reading a user: without the rollup's figures, nowhere in particular
 * (the whole history); with them, a window sized to hold about twice `perUser` of the user's
 * events at the user's own average rate (between an hour and RECENT_WINDOW_MS), so that a busy
 * user's first read touches one partition and a quiet one's a few; a user with no more events
 * than asked for is read from its first event at once. A type filter keeps RECENT_WINDOW_MS: the
 * rollup's count is of all types.
 */
function firstWindowStart(seen: UserSeen | null | undefined, perUser: number, type: string | null): Date | null {
  if (!seen) return null;
  const last = seen.last.getTime();
  if (type !== null || seen.events === undefined) return new Date(last - RECENT_WINDOW_MS);
  if (seen.events <= perUser) return seen.first;
  const span = Math.max(last - seen.first.getTime(), 1);
  const window = Math.min(Math.max((2 * perUser * span) / seen.events, MIN_WINDOW_MS), RECENT_WINDOW_MS);
  return new Date(last - window);
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/i;

/** Whether an id can name an event at all (a UUIDv7); anything else is answered with null. */
export function isEventId(id: string): boolean {
  return UUID.test(id);
}

function eventTimeOfId(id: string): Date {
  return new Date(parseInt(id.slice(0, 8) + id.slice(9, 13), 16));
}
