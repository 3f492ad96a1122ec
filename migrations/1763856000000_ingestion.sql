-- Up Migration

-- The Postgres guard behind the Redis dedupe keys: one row per (tenant, messageId). It is separate
-- from `events` because a unique key on the partitioned table must contain the event time, and the
-- event time of a retried event can differ (clock-skew correction uses the time of each attempt).
-- Written in the same statement as the events, so an event with a messageId is stored only by the
-- statement that claimed its messageId.
CREATE TABLE event_message_ids (
  tenant_id    uuid NOT NULL,
  message_id   text NOT NULL,
  event_id     uuid NOT NULL,
  created_at   timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, message_id)
);
-- Serves the retention sweep `DELETE ... WHERE created_at < now() - window`.
CREATE INDEX event_message_ids_created_idx ON event_message_ids (created_at);

-- Down Migration
DROP TABLE event_message_ids;
