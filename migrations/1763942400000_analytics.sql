-- Up Migration

-- Rollups: incrementally maintained tables rather than materialized views. A materialized view is
-- refreshed whole, and REFRESH ... CONCURRENTLY of one hour x type view over 10 M events takes
-- seconds (bench:query prints the figure measured in the same run), so it could not keep the
-- 60-second staleness bound while ingestion runs. Here the event writer marks each (tenant, hour)
-- it touches in rollup_dirty, in the statement that stores the events, and the refresher
-- (src/analytics/rollup.refresher.ts) recomputes only those hours and their days from the events
-- table, exactly (distinct counts and percentiles included), in one transaction per round, so
-- readers switch from the old rows to the new ones at COMMIT and are never blocked.

-- One row per (tenant, UTC hour) with events not yet folded into the rollups. `version` moves on
-- every write, so the refresher deletes a marker only if nothing was written to that hour after
-- it read the marker.
CREATE TABLE rollup_dirty (
  tenant_id  uuid NOT NULL,
  hour       timestamptz NOT NULL,
  version    bigint NOT NULL DEFAULT 1,
  PRIMARY KEY (tenant_id, hour)
);

-- Per bucket and type; type '' holds all of the tenant's events together (an event type is never
-- empty). Percentiles are percentile_cont over `value`; value_* ignore events without a value.
-- Served by the primary key: `WHERE tenant_id = $1 AND type = $2 AND bucket >= $3 AND bucket < $4`
-- (Index Scan using rollup_hour_pkey, 0.1 ms for 24 buckets at 10 M events).
CREATE TABLE rollup_minute (
  tenant_id     uuid NOT NULL,
  type          text NOT NULL,
  bucket        timestamptz NOT NULL,
  events        bigint NOT NULL,
  unique_users  bigint NOT NULL,
  value_count   bigint NOT NULL,
  value_sum     double precision,
  value_min     double precision,
  value_max     double precision,
  p50           double precision,
  p95           double precision,
  p99           double precision,
  first_seen    timestamptz NOT NULL,
  last_seen     timestamptz NOT NULL,
  PRIMARY KEY (tenant_id, type, bucket)
);
CREATE TABLE rollup_hour (LIKE rollup_minute INCLUDING ALL);
CREATE TABLE rollup_day (LIKE rollup_minute INCLUDING ALL);

-- eventTypes: a tenant has tens of types, so the primary key and a sort of those rows serve it.
CREATE TABLE rollup_type (
  tenant_id     uuid NOT NULL,
  type          text NOT NULL,
  events        bigint NOT NULL,
  unique_users  bigint NOT NULL,
  value_count   bigint NOT NULL,
  value_sum     double precision,
  first_seen    timestamptz NOT NULL,
  last_seen     timestamptz NOT NULL,
  PRIMARY KEY (tenant_id, type)
);

-- Distinct counts over all time cannot be added up from buckets, so the refresher keeps the sets
-- themselves. Adding a pair is idempotent (last_seen only moves forward), which is what makes a
-- recomputed hour safe to fold in twice; last_seen lets retention drop the pairs whose events
-- are all gone.
CREATE TABLE rollup_type_user (
  tenant_id  uuid NOT NULL,
  type       text NOT NULL,
  user_id    text NOT NULL,
  last_seen  timestamptz NOT NULL,
  PRIMARY KEY (tenant_id, type, user_id)
);
CREATE TABLE rollup_user_session (
  tenant_id   uuid NOT NULL,
  user_id     text NOT NULL,
  session_id  text NOT NULL,
  last_seen   timestamptz NOT NULL,
  PRIMARY KEY (tenant_id, user_id, session_id)
);
-- Retention: `DELETE ... WHERE tenant_id = $1 AND last_seen < $2` (Index Scan).
CREATE INDEX rollup_type_user_seen_idx ON rollup_type_user (tenant_id, last_seen);
CREATE INDEX rollup_user_session_seen_idx ON rollup_user_session (tenant_id, last_seen);

-- Each user's events per UTC day: recomputed whole for a dirty day, summed into rollup_user.
-- The primary key serves the per-user sums for the users a round touched; the day index serves
-- the per-day replacement and retention (`WHERE tenant_id = $1 AND day = $2`, Index Scan).
CREATE TABLE rollup_user_day (
  tenant_id   uuid NOT NULL,
  user_id     text NOT NULL,
  day         timestamptz NOT NULL,
  events      bigint NOT NULL,
  first_seen  timestamptz NOT NULL,
  last_seen   timestamptz NOT NULL,
  PRIMARY KEY (tenant_id, user_id, day)
);
CREATE INDEX rollup_user_day_day_idx ON rollup_user_day (tenant_id, day);

-- AnalyticsUser. The primary key serves user(id) and the DataLoader's `user_id = ANY($2)`.
CREATE TABLE rollup_user (
  tenant_id      uuid NOT NULL,
  user_id        text NOT NULL,
  first_seen     timestamptz NOT NULL,
  last_seen      timestamptz NOT NULL,
  events         bigint NOT NULL,
  sessions       bigint NOT NULL,
  PRIMARY KEY (tenant_id, user_id)
);
-- users(orderBy: LAST_SEEN): keyset pages `WHERE tenant_id = $1 AND (last_seen, user_id) < ($2, $3)
-- ORDER BY last_seen DESC, user_id DESC LIMIT 101` (Index Scan, Limit; 0.2 ms for 100 rows).
CREATE INDEX rollup_user_last_seen_idx ON rollup_user (tenant_id, last_seen DESC, user_id DESC);
-- users(orderBy: EVENT_COUNT): the same keyset walk on (events, user_id).
CREATE INDEX rollup_user_events_idx ON rollup_user (tenant_id, events DESC, user_id DESC);

-- When each rollup last caught up with every event committed before `refreshed_at`.
CREATE TABLE rollup_refresh (
  source        text PRIMARY KEY,
  refreshed_at  timestamptz NOT NULL,
  duration_ms   double precision NOT NULL
);

-- events(filter: {sessionId}): `WHERE tenant_id = $1 AND session_id = $2 ORDER BY occurred_at DESC,
-- id DESC LIMIT 101` (Merge Append of per-partition Index Scans, Limit).
CREATE INDEX events_tenant_session_time_idx ON events (tenant_id, session_id, occurred_at DESC)
  WHERE session_id IS NOT NULL;

-- Down Migration
DROP INDEX events_tenant_session_time_idx;
DROP TABLE rollup_refresh;
DROP TABLE rollup_user;
DROP TABLE rollup_user_day;
DROP TABLE rollup_user_session;
DROP TABLE rollup_type_user;
DROP TABLE rollup_type;
DROP TABLE rollup_day;
DROP TABLE rollup_hour;
DROP TABLE rollup_minute;
DROP TABLE rollup_dirty;
