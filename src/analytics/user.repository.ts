import type pg from 'pg';
import { UserOrder } from './user-order.enum.js';

type Queryable = Pick<pg.Pool, 'query'>;

export interface UserRow {
  readonly id: string;
  readonly firstSeen: Date;
  readonly lastSeen: Date;
  readonly eventCount: number;
  readonly sessionCount: number;
  /** The sort key of this row under the requested order, exact (timestamps in microseconds). */
  readonly sortKey: string;
}

export interface UserQuery {
  readonly seenSince?: Date | null;
  readonly seenBefore?: Date | null;
  readonly order: UserOrder;
  readonly after?: { readonly sortKey: string; readonly id: string } | null;
  readonly limit: number;
}

interface Row {
  user_id: string;
  first_seen: Date;
  last_seen: Date;
  events: string;
  sessions: string;
  sort_key: string;
}

const SORT: Record<UserOrder, { column: string; key: string; cast: string }> = {
  [UserOrder.LAST_SEEN]: {
    column: 'last_seen',
    key: `(extract(epoch FROM last_seen) * 1000000)::bigint::text`,
    cast: `to_timestamp(0) + ?::bigint * interval '1 microsecond'`,
  },
  [UserOrder.EVENT_COUNT]: { column: 'events', key: 'events::text', cast: '?::bigint' },
};

const toUser = (r: Row): UserRow => ({
  id: r.user_id,
  firstSeen: r.first_seen,
  lastSeen: r.last_seen,
  // bigint arrives as text; counts stay far below 2^53.
  eventCount: Number(r.events),
  sessionCount: Number(r.sessions),
  sortKey: r.sort_key,
});

/** Reads of the user rollup (rollup_user), maintained by the rollup refresher. */
export class UserRepository {
  constructor(private readonly db: Queryable) {}

  async byIds(tenantId: string, ids: readonly string[]): Promise<UserRow[]> {
    const { rows } = await this.db.query<Row>(
      `SELECT user_id, first_seen, last_seen, events, sessions, '' AS sort_key
       FROM rollup_user WHERE tenant_id = $1 AND user_id = ANY ($2::text[])`,
      [tenantId, ids],
    );
    return rows.map(toUser);
  }

  /**
   * A keyset page, descending by the order's column then user_id: served by
   * rollup_user_last_seen_idx / rollup_user_events_idx without a sort.
   */
  async page(tenantId: string, query: UserQuery): Promise<UserRow[]> {
    const sort = SORT[query.order];
    const params: unknown[] = [tenantId];
    const where = ['tenant_id = $1', ...this.filters(query, params)];
    if (query.after) {
      params.push(query.after.sortKey, query.after.id);
      where.push(`(${sort.column}, user_id) < (${sort.cast.replace('?', `$${params.length - 1}`)}, $${params.length})`);
    }
    params.push(query.limit);
    const { rows } = await this.db.query<Row>(
      `SELECT user_id, first_seen, last_seen, events, sessions, ${sort.key} AS sort_key
       FROM rollup_user WHERE ${where.join(' AND ')}
       ORDER BY ${sort.column} DESC, user_id DESC LIMIT $${params.length}`,
      params,
    );
    return rows.map(toUser);
  }

  async count(tenantId: string, query: Pick<UserQuery, 'seenSince' | 'seenBefore'>): Promise<number> {
    const params: unknown[] = [tenantId];
    const where = ['tenant_id = $1', ...this.filters(query, params)];
    const { rows } = await this.db.query<{ n: string }>(
      `SELECT count(*) AS n FROM rollup_user WHERE ${where.join(' AND ')}`,
      params,
    );
    return Number(rows[0]?.n ?? 0);
  }

  private filters(query: Pick<UserQuery, 'seenSince' | 'seenBefore'>, params: unknown[]): string[] {
    const where: string[] = [];
    if (query.seenSince) {
      params.push(query.seenSince);
      where.push(`last_seen >= $${params.length}`);
    }
    if (query.seenBefore) {
      params.push(query.seenBefore);
      where.push(`first_seen < $${params.length}`);
    }
    return where;
  }
}
