-- What the runtime needs beside `oban_jobs`: leadership and producer heartbeats. Same columns as
-- the PostgreSQL tables; uuids are stored as lowercase hyphenated text, timestamps as in
-- `oban_jobs`.

-- Leader election: one row per Oban instance name, held until `expires_at`.
CREATE TABLE IF NOT EXISTS oban_peers (
  name TEXT PRIMARY KEY,
  node TEXT NOT NULL,
  started_at TEXT NOT NULL,
  expires_at TEXT NOT NULL
);

-- Producers: one row per queue per node, with a heartbeat (`updated_at`) the lifeline trusts.
CREATE TABLE IF NOT EXISTS oban_producers (
  uuid TEXT PRIMARY KEY,
  name TEXT NOT NULL DEFAULT 'oban',
  node TEXT NOT NULL,
  queue TEXT NOT NULL,
  meta TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(meta)),
  started_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f000', 'now')),
  updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f000', 'now'))
);
