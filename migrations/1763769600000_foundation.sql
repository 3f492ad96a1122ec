-- Up Migration

-- A tenant owns keys, events and audit rows; its slug is what operators and the CLI name it by.
CREATE TABLE tenants (
  id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  slug        text NOT NULL UNIQUE CHECK (slug ~ '^[a-z0-9][a-z0-9-]{0,62}$'),
  name        text NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT now()
);

-- Only a SHA-256 hash of each key is stored: a leaked table yields no usable key. The prefix (the
-- key's first 12 characters) is public: it finds the candidate rows and names the key in logs and
-- audit rows without revealing it.
CREATE TABLE api_keys (
  id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  tenant_id     uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  name          text NOT NULL CHECK (length(name) BETWEEN 1 AND 128),
  key_prefix    text NOT NULL CHECK (length(key_prefix) BETWEEN 1 AND 12),
  key_hash      bytea NOT NULL UNIQUE CHECK (length(key_hash) = 32),
  scopes        text[] NOT NULL CHECK (
                  cardinality(scopes) > 0
                  AND scopes <@ ARRAY['events:write', 'analytics:read', 'admin']::text[]
                ),
  created_at    timestamptz NOT NULL DEFAULT now(),
  revoked_at    timestamptz,
  last_used_at  timestamptz
);
-- Serves the per-request lookup `WHERE key_prefix = $1` (Index Scan on api_keys_prefix_idx).
CREATE INDEX api_keys_prefix_idx ON api_keys (key_prefix);
-- Serves `keys list --tenant` ordered by creation.
CREATE INDEX api_keys_tenant_idx ON api_keys (tenant_id, created_at);

-- Events are range-partitioned by day on the event time, so retention drops whole partitions and
-- time-bounded queries prune to the days they touch. The primary key must contain the partition
-- column; it also serves tenant + time range scans (newest first by a backward index scan).
-- No foreign key to tenants: it would cost a lookup per inserted row on the hottest path, and the
-- tenant id always comes from a verified key.
CREATE TABLE events (
  tenant_id    uuid NOT NULL,
  id           uuid NOT NULL,
  type         text NOT NULL,
  user_id      text,
  session_id   text,
  message_id   text,
  occurred_at  timestamptz NOT NULL,
  received_at  timestamptz NOT NULL,
  value        double precision,
  properties   jsonb,
  PRIMARY KEY (tenant_id, occurred_at, id)
) PARTITION BY RANGE (occurred_at);

-- A user's timeline: `WHERE tenant_id = $1 AND user_id = $2 ORDER BY occurred_at DESC`.
CREATE INDEX events_tenant_user_time_idx ON events (tenant_id, user_id, occurred_at DESC)
  WHERE user_id IS NOT NULL;
-- One event type over a time range: `WHERE tenant_id = $1 AND type = $2 AND occurred_at >= $3`.
CREATE INDEX events_tenant_type_time_idx ON events (tenant_id, type, occurred_at DESC);

-- Catches events whose day has no partition yet (old backfills, or a maintenance job that has
-- not run); ensure_event_partitions moves them into their day's partition when it creates it.
CREATE TABLE events_default PARTITION OF events DEFAULT;

-- Creates the daily partitions [from_day, to_day] (UTC days) that do not exist yet and returns how
-- many it created. Serialized by an advisory lock so replicas can all call it on a schedule.
CREATE FUNCTION ensure_event_partitions(from_day date, to_day date) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
  day      date;
  part     text;
  lo       timestamptz;
  hi       timestamptz;
  created  integer := 0;
BEGIN
  PERFORM pg_advisory_xact_lock(hashtext('ensure_event_partitions'));
  FOR day IN SELECT generate_series(from_day, to_day, interval '1 day')::date LOOP
    part := 'events_' || to_char(day, 'YYYYMMDD');
    CONTINUE WHEN to_regclass(part) IS NOT NULL;
    lo := day::timestamp AT TIME ZONE 'UTC';
    hi := (day + 1)::timestamp AT TIME ZONE 'UTC';
    -- Attaching validates that no row of the new range is left in the default partition, so
    -- writers into it wait while this day's rows move over.
    LOCK TABLE events_default IN EXCLUSIVE MODE;
    EXECUTE format('CREATE TABLE %I (LIKE events INCLUDING DEFAULTS INCLUDING CONSTRAINTS)', part);
    EXECUTE format(
      'WITH moved AS (DELETE FROM events_default WHERE occurred_at >= %L AND occurred_at < %L RETURNING *)
       INSERT INTO %I SELECT * FROM moved', lo, hi, part);
    EXECUTE format('ALTER TABLE events ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)', part, lo, hi);
    created := created + 1;
  END LOOP;
  RETURN created;
END
$$;

SELECT ensure_event_partitions((now() AT TIME ZONE 'UTC')::date - 1, (now() AT TIME ZONE 'UTC')::date + 7);

-- Every mutation, admin action, authentication failure and limit rejection. Append-only: the
-- triggers below refuse UPDATE, DELETE and TRUNCATE for every role the application connects as.
CREATE TABLE audit_log (
  id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  occurred_at     timestamptz NOT NULL DEFAULT now(),
  tenant_id       uuid REFERENCES tenants (id),
  api_key_id      uuid,
  key_prefix      text,
  action          text NOT NULL,
  operation_name  text,
  result          text NOT NULL,
  ip              inet,
  user_agent      text,
  trace_id        text,
  request_id      text,
  details         jsonb NOT NULL DEFAULT '{}'::jsonb
);
-- `auditLog(filter, first, after)` pages a tenant's rows newest first.
CREATE INDEX audit_log_tenant_time_idx ON audit_log (tenant_id, occurred_at DESC, id DESC);

CREATE FUNCTION audit_log_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'audit_log is append-only (% refused)', TG_OP
    USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER audit_log_no_update_or_delete
  BEFORE UPDATE OR DELETE ON audit_log
  FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
CREATE TRIGGER audit_log_no_truncate
  BEFORE TRUNCATE ON audit_log
  FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();

-- Down Migration
DROP TABLE audit_log;
DROP FUNCTION audit_log_append_only();
DROP FUNCTION ensure_event_partitions(date, date);
DROP TABLE events;
DROP TABLE api_keys;
DROP TABLE tenants;
