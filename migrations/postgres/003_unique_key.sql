-- Race-free unique jobs (see oban_core::unique): a job's key while it is in its unique states,
-- and an index that lets one row at most hold a key. Adding a nullable column is instant; the
-- partial index scans the table once. On a very large table, create the same index
-- CONCURRENTLY before upgrading and this step will keep it.
ALTER TABLE oban_jobs ADD COLUMN IF NOT EXISTS uniq_key text;
CREATE UNIQUE INDEX IF NOT EXISTS oban_jobs_uniq_key_index ON oban_jobs (uniq_key) WHERE uniq_key IS NOT NULL;
