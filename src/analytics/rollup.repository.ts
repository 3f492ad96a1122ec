import type pg from 'pg';

type Queryable = Pick<pg.Pool, 'query'> | pg.PoolClient;

/** The rollups `freshness` reports on; all of them are brought up to date by one refresh round. */
export const ROLLUP_SOURCES = ['rollup_minute', 'rollup_hour', 'rollup_day', 'rollup_type', 'rollup_user'] as const;
export type RollupSource = (typeof ROLLUP_SOURCES)[number];

export type BucketUnit = 'minute' | 'hour' | 'day';
const BUCKET_TABLE: Record<BucketUnit, string> = { minute: 'rollup_minute', hour: 'rollup_hour', day: 'rollup_day' };

export interface DirtyHour {
  readonly tenantId: string;
  readonly hour: Date;
  /** bigint as text: compared, never computed with. */
  readonly version: string;
}

export interface Freshness {
  readonly source: string;
  readonly refreshedAt: Date;
  readonly durationMs: number;
}

/**
 * SQL of the rollup tables (migrations/1763942400000_analytics.sql). Every recompute reads the
 * events table itself, never a rollup's previous state, so running one twice is harmless: the
 * refresher can retry a failed round, and an hour marked dirty again is simply recomputed again.
 *
 * `hours` narrows a recompute to whole UTC hours inside [from, to): the range lets Postgres prune
 * partitions and walk the (tenant_id, occurred_at) primary key; the hour list drops the rows of
 * clean hours in between.
 */
export class RollupRepository {
  constructor(private readonly db: Queryable) {}

  /** Marks every UTC hour in [from, to) dirty (after a bulk load that bypassed the event writer). */
  async markDirty(tenantId: string, from: Date, to: Date): Promise<number> {
    const { rowCount } = await this.db.query(
      `INSERT INTO rollup_dirty (tenant_id, hour)
       SELECT $1, h FROM generate_series(date_trunc('hour', $2::timestamptz, 'UTC'), $3::timestamptz - interval '1 microsecond', interval '1 hour') h
       ON CONFLICT (tenant_id, hour) DO UPDATE SET version = rollup_dirty.version + 1`,
      [tenantId, from, to],
    );
    return rowCount ?? 0;
  }

  /** The oldest `perTenant` dirty hours of every tenant, and which tenants have more than that. */
  async dirtyHours(perTenant: number): Promise<{ hours: DirtyHour[]; truncated: Set<string> }> {
    const { rows } = await this.db.query<{ tenant_id: string; hour: Date; version: string; total: string }>(
      `SELECT tenant_id, hour, version::text, total FROM (
         SELECT tenant_id, hour, version,
                row_number() OVER (PARTITION BY tenant_id ORDER BY hour) AS n,
                count(*) OVER (PARTITION BY tenant_id) AS total
         FROM rollup_dirty) d
       WHERE n <= $1 ORDER BY tenant_id, hour`,
      [perTenant],
    );
    return {
      hours: rows.map((r) => ({ tenantId: r.tenant_id, hour: r.hour, version: r.version })),
      truncated: new Set(rows.filter((r) => Number(r.total) > perTenant).map((r) => r.tenant_id)),
    };
  }

  /** Up to `limit` of one tenant's dirty hours inside [from, to), oldest first (rebuilds and erasures). */
  async dirtyHoursOf(tenantId: string, from: Date, to: Date, limit: number): Promise<DirtyHour[]> {
    const { rows } = await this.db.query<{ hour: Date; version: string }>(
      `SELECT hour, version::text FROM rollup_dirty
       WHERE tenant_id = $1 AND hour >= $2 AND hour < $3 ORDER BY hour LIMIT $4`,
      [tenantId, from, to, limit],
    );
    return rows.map((r) => ({ tenantId, hour: r.hour, version: r.version }));
  }

  /**
   * Drops one user from the distinct sets and the per-user rollups (erasure, once the user's events
   * are gone): the sets only ever grow in a refresh, so nothing else would take the user out.
   * The buckets and types that counted the user are recomputed from their dirty hours.
   */
  async forgetUser(tenantId: string, userId: string): Promise<void> {
    for (const table of ['rollup_type_user', 'rollup_user_session', 'rollup_user_day', 'rollup_user']) {
      await this.db.query(`DELETE FROM ${table} WHERE tenant_id = $1 AND user_id = $2`, [tenantId, userId]);
    }
  }

  /**
   * Forgets the markers a round has folded in, unless written again since they were read (the
   * version moved): those hours stay dirty for the next round. Locks in the writers' order.
   */
  async clearDirty(tenantId: string, hours: readonly DirtyHour[]): Promise<void> {
    await this.db.query(
      `DELETE FROM rollup_dirty d USING (
         SELECT r.tenant_id, r.hour FROM rollup_dirty r
         JOIN unnest($2::timestamptz[], $3::bigint[]) AS m(hour, version) ON r.hour = m.hour AND r.version = m.version
         WHERE r.tenant_id = $1 ORDER BY r.hour FOR UPDATE OF r) doomed
       WHERE d.tenant_id = doomed.tenant_id AND d.hour = doomed.hour`,
      [tenantId, hours.map((h) => h.hour), hours.map((h) => h.version)],
    );
  }

  /** Replaces the buckets of one unit inside [from, to) (only the listed hours when given). */
  async recomputeBuckets(
    unit: BucketUnit,
    tenantId: string,
    from: Date,
    to: Date,
    hours: readonly Date[] | null,
  ): Promise<void> {
    const table = BUCKET_TABLE[unit];
    const params = [tenantId, from, to, hours];
    await this.db.query(
      `DELETE FROM ${table} WHERE tenant_id = $1 AND bucket >= $2 AND bucket < $3
         AND ($4::timestamptz[] IS NULL OR date_trunc('hour', bucket, 'UTC') = ANY ($4))`,
      params,
    );
    // GROUPING SETS: per type, and all types together under type ''.
    await this.db.query(
      `INSERT INTO ${table} (tenant_id, type, bucket, events, unique_users, value_count, value_sum, value_min,
                             value_max, p50, p95, p99, first_seen, last_seen)
       SELECT $1, g.type, g.bucket, g.events, g.unique_users, g.value_count, g.value_sum, g.value_min,
              g.value_max, g.pct[1], g.pct[2], g.pct[3], g.first_seen, g.last_seen
       FROM (
         SELECT COALESCE(type, '') AS type, date_trunc('${unit}', occurred_at, 'UTC') AS bucket,
                count(*) AS events, count(DISTINCT user_id) AS unique_users, count(value) AS value_count,
                sum(value) AS value_sum, min(value) AS value_min, max(value) AS value_max,
                percentile_cont(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (ORDER BY value) AS pct,
                min(occurred_at) AS first_seen, max(occurred_at) AS last_seen
         FROM events
         WHERE tenant_id = $1 AND occurred_at >= $2 AND occurred_at < $3
           AND ($4::timestamptz[] IS NULL OR date_trunc('hour', occurred_at, 'UTC') = ANY ($4))
         GROUP BY GROUPING SETS ((date_trunc('${unit}', occurred_at, 'UTC'), type),
                                 (date_trunc('${unit}', occurred_at, 'UTC')))
       ) g`,
      params,
    );
  }

  /** Replaces each user's totals for one UTC day. */
  async recomputeUserDay(tenantId: string, day: Date): Promise<void> {
    await this.db.query('DELETE FROM rollup_user_day WHERE tenant_id = $1 AND day = $2', [tenantId, day]);
    await this.db.query(
      `INSERT INTO rollup_user_day (tenant_id, user_id, day, events, first_seen, last_seen)
       SELECT $1, user_id, $2, count(*), min(occurred_at), max(occurred_at)
       FROM events
       WHERE tenant_id = $1 AND occurred_at >= $2 AND occurred_at < $2::timestamptz + interval '1 day'
         AND user_id IS NOT NULL
       GROUP BY user_id`,
      [tenantId, day],
    );
  }

  /**
   * Adds the (user, session) and (type, user) pairs of these hours to their sets; returns the
   * users seen in them, whose totals need recomputing.
   */
  async addPairs(tenantId: string, from: Date, to: Date, hours: readonly Date[]): Promise<string[]> {
    const params = [tenantId, from, to, hours];
    const inHours = `tenant_id = $1 AND occurred_at >= $2 AND occurred_at < $3
                     AND date_trunc('hour', occurred_at, 'UTC') = ANY ($4) AND user_id IS NOT NULL`;
    await this.db.query(
      `INSERT INTO rollup_user_session (tenant_id, user_id, session_id, last_seen)
       SELECT $1, user_id, session_id, max(occurred_at) FROM events
       WHERE ${inHours} AND session_id IS NOT NULL
       GROUP BY user_id, session_id
       ON CONFLICT (tenant_id, user_id, session_id) DO UPDATE SET last_seen = EXCLUDED.last_seen
         WHERE rollup_user_session.last_seen < EXCLUDED.last_seen`,
      params,
    );
    const { rows } = await this.db.query<{ user_id: string }>(
      `WITH pairs AS (
         INSERT INTO rollup_type_user (tenant_id, type, user_id, last_seen)
         SELECT $1, type, user_id, max(occurred_at) FROM events WHERE ${inHours}
         GROUP BY type, user_id
         ON CONFLICT (tenant_id, type, user_id) DO UPDATE SET last_seen = EXCLUDED.last_seen
           WHERE rollup_type_user.last_seen < EXCLUDED.last_seen
       )
       SELECT DISTINCT user_id FROM events WHERE ${inHours}`,
      params,
    );
    return rows.map((r) => r.user_id);
  }

  /** Recomputes these users' totals from their days and sessions; drops users with no events left. */
  async recomputeUsers(tenantId: string, userIds: readonly string[]): Promise<void> {
    if (userIds.length === 0) return;
    await this.db.query(
      `WITH touched AS (SELECT DISTINCT unnest($2::text[]) AS user_id),
       days AS (
         SELECT d.user_id, min(d.first_seen) AS first_seen, max(d.last_seen) AS last_seen, sum(d.events) AS events
         FROM rollup_user_day d JOIN touched t ON t.user_id = d.user_id
         WHERE d.tenant_id = $1 GROUP BY d.user_id
       ),
       sessions AS (
         SELECT s.user_id, count(*) AS sessions
         FROM rollup_user_session s JOIN touched t ON t.user_id = s.user_id
         WHERE s.tenant_id = $1 GROUP BY s.user_id
       ),
       gone AS (
         DELETE FROM rollup_user u USING touched t
         WHERE u.tenant_id = $1 AND u.user_id = t.user_id AND NOT EXISTS (SELECT 1 FROM days WHERE days.user_id = t.user_id)
       )
       INSERT INTO rollup_user (tenant_id, user_id, first_seen, last_seen, events, sessions)
       SELECT $1, d.user_id, d.first_seen, d.last_seen, d.events, COALESCE(s.sessions, 0)
       FROM days d LEFT JOIN sessions s ON s.user_id = d.user_id
       ON CONFLICT (tenant_id, user_id) DO UPDATE SET first_seen = EXCLUDED.first_seen,
         last_seen = EXCLUDED.last_seen, events = EXCLUDED.events, sessions = EXCLUDED.sessions`,
      [tenantId, userIds],
    );
  }

  /** Recomputes every type's totals of one tenant from the day rollups and the type-user sets. */
  async recomputeTypes(tenantId: string): Promise<void> {
    await this.db.query(
      `DELETE FROM rollup_type t WHERE t.tenant_id = $1
         AND NOT EXISTS (SELECT 1 FROM rollup_day d WHERE d.tenant_id = $1 AND d.type = t.type)`,
      [tenantId],
    );
    await this.db.query(
      `INSERT INTO rollup_type (tenant_id, type, events, unique_users, value_count, value_sum, first_seen, last_seen)
       SELECT $1, d.type, sum(d.events), (SELECT count(*) FROM rollup_type_user u WHERE u.tenant_id = $1 AND u.type = d.type),
              sum(d.value_count), sum(d.value_sum), min(d.first_seen), max(d.last_seen)
       FROM rollup_day d WHERE d.tenant_id = $1 AND d.type <> ''
       GROUP BY d.type
       ON CONFLICT (tenant_id, type) DO UPDATE SET events = EXCLUDED.events, unique_users = EXCLUDED.unique_users,
         value_count = EXCLUDED.value_count, value_sum = EXCLUDED.value_sum,
         first_seen = EXCLUDED.first_seen, last_seen = EXCLUDED.last_seen`,
      [tenantId],
    );
  }

  /**
   * Forgets everything before `cutoff` (retention, after the events partitions were dropped):
   * old buckets and pairs go, and the users and types they counted are recomputed.
   */
  async forgetBefore(tenantId: string, cutoff: Date): Promise<void> {
    for (const table of Object.values(BUCKET_TABLE)) {
      await this.db.query(`DELETE FROM ${table} WHERE tenant_id = $1 AND bucket < $2`, [tenantId, cutoff]);
    }
    await this.db.query('DELETE FROM rollup_type_user WHERE tenant_id = $1 AND last_seen < $2', [tenantId, cutoff]);
    await this.db.query('DELETE FROM rollup_user_session WHERE tenant_id = $1 AND last_seen < $2', [tenantId, cutoff]);
    const { rows } = await this.db.query<{ user_id: string }>(
      'DELETE FROM rollup_user_day WHERE tenant_id = $1 AND day < $2 RETURNING user_id',
      [tenantId, cutoff],
    );
    await this.recomputeUsers(tenantId, [...new Set(rows.map((r) => r.user_id))]);
    await this.recomputeTypes(tenantId);
  }

  /** Tenants that have any rollup rows (retention visits each). */
  async tenants(): Promise<string[]> {
    const { rows } = await this.db.query<{ tenant_id: string }>(
      'SELECT DISTINCT tenant_id FROM rollup_type UNION SELECT DISTINCT tenant_id FROM rollup_dirty',
    );
    return rows.map((r) => r.tenant_id);
  }

  async recordRefresh(refreshedAt: Date, durationMs: number): Promise<void> {
    await this.db.query(
      `INSERT INTO rollup_refresh (source, refreshed_at, duration_ms)
       SELECT unnest($1::text[]), $2, $3
       ON CONFLICT (source) DO UPDATE SET refreshed_at = EXCLUDED.refreshed_at, duration_ms = EXCLUDED.duration_ms`,
      [ROLLUP_SOURCES, refreshedAt, durationMs],
    );
  }

  async freshness(): Promise<Freshness[]> {
    const { rows } = await this.db.query<{ source: string; refreshed_at: Date; duration_ms: number }>(
      'SELECT source, refreshed_at, duration_ms FROM rollup_refresh ORDER BY source',
    );
    return rows.map((r) => ({ source: r.source, refreshedAt: r.refreshed_at, durationMs: r.duration_ms }));
  }
}
