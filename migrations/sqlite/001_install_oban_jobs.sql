-- Oban's job table for SQLite (the Lite engine): the same columns as PostgreSQL's `oban_jobs`,
-- with SQLite's types.
--
-- - `state` is TEXT limited by a CHECK to Oban's states.
-- - `args`, `meta`, `tags`, `errors` and `attempted_by` hold JSON text (an object, an object, an
--   array of strings, an array of `{"at", "attempt", "error"}` objects, `[node, producer]`).
-- - Timestamps are TEXT in UTC, `YYYY-MM-DD HH:MM:SS.ffffff` (always six decimals), so that text
--   order is time order and SQLite's date functions read them. The engine writes them from the
--   process clock (SQLite's own clock has only millisecond resolution); the defaults below, for
--   rows written by hand, use the same format.
-- - `id` is AUTOINCREMENT: ids are never reused after deletes, as with PostgreSQL's bigserial.

CREATE TABLE IF NOT EXISTS oban_jobs (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  state TEXT NOT NULL DEFAULT 'available'
    CHECK (state IN ('available', 'suspended', 'scheduled', 'executing', 'retryable', 'completed', 'discarded', 'cancelled')),
  queue TEXT NOT NULL DEFAULT 'default' CHECK (length(queue) > 0 AND length(queue) < 128),
  worker TEXT NOT NULL CHECK (length(worker) > 0 AND length(worker) < 128),
  args TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(args)),
  errors TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(errors)),
  attempt INTEGER NOT NULL DEFAULT 0,
  max_attempts INTEGER NOT NULL DEFAULT 20 CHECK (max_attempts > 0),
  inserted_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f000', 'now')),
  scheduled_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f000', 'now')),
  attempted_at TEXT,
  completed_at TEXT,
  attempted_by TEXT CHECK (attempted_by IS NULL OR json_valid(attempted_by)),
  discarded_at TEXT,
  priority INTEGER NOT NULL DEFAULT 0 CHECK (priority >= 0),
  tags TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(tags)),
  meta TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(meta)),
  cancelled_at TEXT,
  -- Race-free unique jobs (see oban_core::unique): the job's key while it is in its unique states.
  uniq_key TEXT,
  CHECK (attempt BETWEEN 0 AND max_attempts)
);

-- Fetching: available jobs of one queue in priority, scheduled_at, id order.
CREATE INDEX IF NOT EXISTS oban_jobs_state_queue_priority_scheduled_at_id_index
  ON oban_jobs (state, queue, priority, scheduled_at, id);
-- Staging scheduled and retryable jobs.
CREATE INDEX IF NOT EXISTS oban_jobs_staging_idx
  ON oban_jobs (scheduled_at, id) WHERE state IN ('scheduled', 'retryable');
-- Pruning finished jobs by age (partial: only rows in that state are indexed).
CREATE INDEX IF NOT EXISTS oban_jobs_completed_at_idx ON oban_jobs (completed_at) WHERE state = 'completed';
CREATE INDEX IF NOT EXISTS oban_jobs_cancelled_at_idx ON oban_jobs (cancelled_at) WHERE state = 'cancelled';
CREATE INDEX IF NOT EXISTS oban_jobs_discarded_at_idx ON oban_jobs (discarded_at) WHERE state = 'discarded';
-- At most one row holds a unique key.
CREATE UNIQUE INDEX IF NOT EXISTS oban_jobs_uniq_key_index ON oban_jobs (uniq_key) WHERE uniq_key IS NOT NULL;
