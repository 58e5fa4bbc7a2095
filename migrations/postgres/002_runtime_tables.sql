-- What this runtime needs beside `oban_jobs`, added where missing whoever installed the schema.

-- Oban versions before V09 and V14 lack these states; adding an enum value is harmless to them.
ALTER TYPE oban_job_state ADD VALUE IF NOT EXISTS 'cancelled';
ALTER TYPE oban_job_state ADD VALUE IF NOT EXISTS 'suspended' BEFORE 'scheduled';

-- Leader election (Elixir Oban's table, V11): one row per Oban instance name.
CREATE UNLOGGED TABLE IF NOT EXISTS oban_peers (
  name text PRIMARY KEY,
  node text NOT NULL,
  started_at timestamp without time zone NOT NULL,
  expires_at timestamp without time zone NOT NULL
);

-- Producers: one row per queue per node, with a heartbeat (`updated_at`) the lifeline trusts.
CREATE UNLOGGED TABLE IF NOT EXISTS oban_producers (
  uuid uuid PRIMARY KEY,
  name text NOT NULL DEFAULT 'oban',
  node text NOT NULL,
  queue text NOT NULL,
  meta jsonb NOT NULL DEFAULT '{}',
  started_at timestamp without time zone NOT NULL DEFAULT timezone('UTC', now()),
  updated_at timestamp without time zone NOT NULL DEFAULT timezone('UTC', now())
);
