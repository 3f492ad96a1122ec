-- Up Migration

-- One row per erased (tenant, user): the tombstone the event writer honours
-- (src/ingest/event.repository.ts). While an erasure runs, erased_at is 'infinity' and every event
-- of that user is refused; when it completes, erased_at becomes the erasure's completion time and
-- the rule is final: an event whose received_at is earlier than erased_at is never stored, one
-- received at or after it is (the user's new events are accepted). received_at is fixed when the
-- gateway first receives an event, so stream redeliveries, reclaimed entries and replayed dead
-- letters are judged by the same time.
CREATE TABLE erased_users (
  tenant_id   uuid NOT NULL,
  user_id     text NOT NULL,
  erased_at   timestamptz NOT NULL,
  PRIMARY KEY (tenant_id, user_id)
);

-- Retention of the audit log (AUDIT_RETENTION_DAYS) without giving up append-only: rows may be
-- deleted only by purge_audit_log, which runs as the role audit_retention (SECURITY DEFINER,
-- owned by it), and only rows older than the retention it was called with (at least one day).
-- Every other role, the application's included, is still refused UPDATE, DELETE and TRUNCATE.
DO $$
BEGIN
  CREATE ROLE audit_retention NOLOGIN;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
  -- Roles are cluster-wide: another database of this cluster created it already.
  NULL;
END
$$;
GRANT SELECT, DELETE ON audit_log TO audit_retention;

CREATE OR REPLACE FUNCTION audit_log_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
  cutoff timestamptz := nullif(current_setting('audit.purge_before', true), '')::timestamptz;
BEGIN
  IF TG_OP = 'DELETE' AND current_user = 'audit_retention' AND cutoff IS NOT NULL
     AND cutoff <= now() - interval '1 day' AND OLD.occurred_at < cutoff THEN
    RETURN OLD;
  END IF;
  RAISE EXCEPTION 'audit_log is append-only (% refused)', TG_OP
    USING ERRCODE = 'insufficient_privilege';
END
$$;

-- Deletes up to batch_size rows older than retention_days and returns how many; the caller
-- repeats until fewer come back, so each call is a short transaction.
CREATE FUNCTION purge_audit_log(retention_days integer, batch_size integer) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
  cutoff  timestamptz;
  deleted integer;
BEGIN
  IF retention_days IS NULL OR retention_days < 1 THEN
    RAISE EXCEPTION 'retention_days must be at least 1' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  cutoff := now() - make_interval(days => retention_days);
  PERFORM set_config('audit.purge_before', cutoff::text, true);
  DELETE FROM audit_log WHERE id = ANY (ARRAY(
    SELECT id FROM audit_log WHERE occurred_at < cutoff ORDER BY occurred_at LIMIT batch_size));
  GET DIAGNOSTICS deleted = ROW_COUNT;
  PERFORM set_config('audit.purge_before', '', true);
  RETURN deleted;
END
$$;
ALTER FUNCTION purge_audit_log(integer, integer) OWNER TO audit_retention;
-- Only the role that runs the migrations (the gateway's) may call it; grant others explicitly.
REVOKE ALL ON FUNCTION purge_audit_log(integer, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION purge_audit_log(integer, integer) TO CURRENT_USER;
-- Serves the purge's `WHERE occurred_at < cutoff ORDER BY occurred_at LIMIT n` (Index Scan).
CREATE INDEX audit_log_time_idx ON audit_log (occurred_at);

-- Down Migration
DROP INDEX audit_log_time_idx;
DROP FUNCTION purge_audit_log(integer, integer);
CREATE OR REPLACE FUNCTION audit_log_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'audit_log is append-only (% refused)', TG_OP
    USING ERRCODE = 'insufficient_privilege';
END
$$;
REVOKE SELECT, DELETE ON audit_log FROM audit_retention;
DROP TABLE erased_users;
