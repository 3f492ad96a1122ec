import assert from 'node:assert/strict';
import type pg from 'pg';
import { DailyStatsDocument, EventTypesDocument, TimeseriesDocument, UsersDocument } from '../generated/graphql.js';
import { gql } from './graphql-client.js';

/**
 * Asserts that eventTypes, dailyStats, timeseries (HOUR) and users answer what plain SQL over the
 * tenant's events table says, for [from, to). Counts and distinct users are compared exactly.
 */
export async function assertStatisticsMatchEvents(
  url: string,
  key: string,
  pool: pg.Pool,
  tenantId: string,
  from: Date,
  to: Date,
): Promise<void> {
  const types = await gql(url, EventTypesDocument, { key, variables: { first: 100 } });
  assert.equal(types.errors, undefined, JSON.stringify(types.errors));
  const { rows: sqlTypes } = await pool.query<{ type: string; count: number; users: number }>(
    `SELECT type, count(*)::int AS count, count(DISTINCT user_id)::int AS users FROM events
     WHERE tenant_id = $1 GROUP BY type ORDER BY type`,
    [tenantId],
  );
  assert.deepEqual(
    types
      .data!.eventTypes.map((t) => ({ type: t.type, count: t.count, users: t.uniqueUsers }))
      .sort((a, b) => a.type.localeCompare(b.type)),
    sqlTypes,
    'eventTypes',
  );

  const days = await gql(url, DailyStatsDocument, {
    key,
    variables: { from: from.toISOString(), to: to.toISOString() },
  });
  assert.equal(days.errors, undefined, JSON.stringify(days.errors));
  const { rows: sqlDays } = await pool.query<{ day: Date; count: number; users: number }>(
    `SELECT date_trunc('day', occurred_at, 'UTC') AS day, count(*)::int AS count, count(DISTINCT user_id)::int AS users
     FROM events WHERE tenant_id = $1 AND occurred_at >= date_trunc('day', $2::timestamptz, 'UTC') AND occurred_at < $3
     GROUP BY 1 ORDER BY 1`,
    [tenantId, from, to],
  );
  assert.deepEqual(
    days
      .data!.dailyStats.filter((d) => d.totalEvents > 0)
      .map((d) => ({ day: new Date(d.day).toISOString(), count: d.totalEvents, users: d.uniqueUsers })),
    sqlDays.map((d) => ({ day: d.day.toISOString(), count: d.count, users: d.users })),
    'dailyStats',
  );

  const hours = await gql(url, TimeseriesDocument, {
    key,
    variables: { interval: 'HOUR', from: from.toISOString(), to: to.toISOString() },
  });
  assert.equal(hours.errors, undefined, JSON.stringify(hours.errors));
  const { rows: sqlHours } = await pool.query<{ bucket: Date; count: number; users: number }>(
    `SELECT date_trunc('hour', occurred_at, 'UTC') AS bucket, count(*)::int AS count, count(DISTINCT user_id)::int AS users
     FROM events WHERE tenant_id = $1 AND occurred_at >= date_trunc('hour', $2::timestamptz, 'UTC') AND occurred_at < $3
     GROUP BY 1 ORDER BY 1`,
    [tenantId, from, to],
  );
  assert.deepEqual(
    hours
      .data!.timeseries.filter((p) => p.count > 0)
      .map((p) => ({ bucket: new Date(p.bucket).toISOString(), count: p.count, users: p.uniqueUsers })),
    sqlHours.map((h) => ({ bucket: h.bucket.toISOString(), count: h.count, users: h.users })),
    'timeseries',
  );

  const seen = new Map<string, number>();
  let after: string | null = null;
  let totalCount = -1;
  do {
    const page: Awaited<ReturnType<typeof gql<import('../generated/graphql.js').UsersQuery, unknown>>> = await gql(
      url,
      UsersDocument,
      { key, variables: { first: 100, after } },
    );
    assert.equal(page.errors, undefined, JSON.stringify(page.errors));
    totalCount = page.data!.users.totalCount;
    for (const e of page.data!.users.edges) seen.set(e.node.id, e.node.eventCount);
    after = page.data!.users.pageInfo.hasNextPage ? page.data!.users.pageInfo.endCursor : null;
  } while (after);
  const { rows: sqlUsers } = await pool.query<{ user_id: string; count: number }>(
    `SELECT user_id, count(*)::int AS count FROM events WHERE tenant_id = $1 AND user_id IS NOT NULL
     GROUP BY user_id ORDER BY user_id`,
    [tenantId],
  );
  assert.equal(totalCount, sqlUsers.length, 'users.totalCount');
  assert.deepEqual(
    [...seen.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)),
    sqlUsers.map((u) => [u.user_id, u.count]),
    'users',
  );
}
