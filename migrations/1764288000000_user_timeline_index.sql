-- Up Migration

-- A user's latest events (AnalyticsUser.events, src/analytics/event-read.repository.ts
-- latestByUsers) are read newest first with the id as tie-break: ORDER BY occurred_at DESC, id DESC.
-- The (tenant_id, user_id, occurred_at DESC) index could not give that order, so under the
-- generic plan the planner walked each partition's primary key backwards and filtered on the user,
-- reading other users' rows; with the id in the index the walk reads only the user's own rows.
CREATE INDEX events_tenant_user_time_id_idx ON events (tenant_id, user_id, occurred_at DESC, id DESC)
  WHERE user_id IS NOT NULL;
DROP INDEX events_tenant_user_time_idx;

-- Down Migration
CREATE INDEX events_tenant_user_time_idx ON events (tenant_id, user_id, occurred_at DESC)
  WHERE user_id IS NOT NULL;
DROP INDEX events_tenant_user_time_id_idx;
