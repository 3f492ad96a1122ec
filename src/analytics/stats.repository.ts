import type pg from 'pg';
import type { BucketUnit } from './rollup.repository.js';

type Queryable = Pick<pg.Pool, 'query'>;

export interface TypeStatsRow {
  readonly type: string;
  readonly count: number;
  readonly uniqueUsers: number;
  readonly avgValue: number | null;
  readonly firstSeen: Date;
  readonly lastSeen: Date;
}

export interface BucketRow {
  readonly bucket: Date;
  readonly count: number;
  readonly uniqueUsers: number;
  readonly sum: number | null;
  readonly avg: number | null;
  readonly min: number | null;
  readonly max: number | null;
  readonly p50: number | null;
  readonly p95: number | null;
  readonly p99: number | null;
}

const TABLE: Record<BucketUnit, string> = { minute: 'rollup_minute', hour: 'rollup_hour', day: 'rollup_day' };

/** Reads of the statistics rollups; every query is an index range scan of a rollup's primary key. */
export class StatsRepository {
  constructor(private readonly db: Queryable) {}

  /** The tenant's event types, most frequent first. */
  async eventTypes(tenantId: string, limit: number): Promise<TypeStatsRow[]> {
    const { rows } = await this.db.query<{
      type: string;
      events: string;
      unique_users: string;
      avg_value: number | null;
      first_seen: Date;
      last_seen: Date;
    }>(
      `SELECT type, events, unique_users, value_sum / NULLIF(value_count, 0) AS avg_value, first_seen, last_seen
       FROM rollup_type WHERE tenant_id = $1 ORDER BY events DESC, type LIMIT $2`,
      [tenantId, limit],
    );
    return rows.map((r) => ({
      type: r.type,
      count: Number(r.events),
      uniqueUsers: Number(r.unique_users),
      avgValue: r.avg_value,
      firstSeen: r.first_seen,
      lastSeen: r.last_seen,
    }));
  }

  /**
   * Every bucket from the one holding `from` up to `to` (exclusive), empty buckets included with
   * a zero count, so a chart needs no gap filling. `type` null reads the all-types rows (type '').
   */
  async buckets(tenantId: string, unit: BucketUnit, type: string | null, from: Date, to: Date): Promise<BucketRow[]> {
    const { rows } = await this.db.query<{
      bucket: Date;
      events: string | null;
      unique_users: string | null;
      value_count: string | null;
      value_sum: number | null;
      value_min: number | null;
      value_max: number | null;
      p50: number | null;
      p95: number | null;
      p99: number | null;
    }>(
      `SELECT s.bucket, r.events, r.unique_users, r.value_count, r.value_sum, r.value_min, r.value_max, r.p50, r.p95, r.p99
       FROM generate_series(date_trunc($5, $3::timestamptz, 'UTC'), $4::timestamptz - interval '1 microsecond',
                            ('1 ' || $5)::interval) AS s(bucket)
       LEFT JOIN ${TABLE[unit]} r ON r.tenant_id = $1 AND r.type = $2 AND r.bucket = s.bucket
         AND r.bucket >= date_trunc($5, $3::timestamptz, 'UTC') AND r.bucket < $4
       ORDER BY s.bucket`,
      [tenantId, type ?? '', from, to, unit],
    );
    return rows.map((r) => {
      const valueCount = Number(r.value_count ?? 0);
      return {
        bucket: r.bucket,
        count: Number(r.events ?? 0),
        uniqueUsers: Number(r.unique_users ?? 0),
        sum: r.value_sum,
        avg: valueCount > 0 && r.value_sum !== null ? r.value_sum / valueCount : null,
        min: r.value_min,
        max: r.value_max,
        p50: r.p50,
        p95: r.p95,
        p99: r.p99,
      };
    });
  }
}
