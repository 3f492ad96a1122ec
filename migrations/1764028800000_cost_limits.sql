-- Up Migration

-- A key's own largest cost per operation; NULL uses COST_MAX_PER_OPERATION. The budget itself
-- lives in Redis (it changes on every request), not here.
ALTER TABLE api_keys
  ADD COLUMN max_operation_cost integer CHECK (max_operation_cost BETWEEN 1 AND 10000000);

-- Down Migration
ALTER TABLE api_keys DROP COLUMN max_operation_cost;
