-- Flow control (oban-core/src/limits/): the same tables as PostgreSQL's
-- migrations/postgres/009_queue_limits.sql. SQLite's claim (engines/sqlite/fetch.rs) counts and
-- claims under the hub's write lock, in Rust, with the same rules.
CREATE TABLE IF NOT EXISTS oban_rust_queue_limits (
  queue TEXT PRIMARY KEY,
  limits TEXT NOT NULL CHECK (json_valid(limits)),
  updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f000', 'now'))
);

CREATE TABLE IF NOT EXISTS oban_rust_rate_buckets (
  queue TEXT NOT NULL,
  partition TEXT NOT NULL,
  bucket_ms INTEGER NOT NULL,
  starts INTEGER NOT NULL,
  PRIMARY KEY (queue, partition, bucket_ms)
);
