-- What Oban's Python package (0.7) needs to start on a schema this runtime installed, and the
-- version comment Elixir Oban reads, corrected. Nothing another implementation installed is
-- changed: every step creates only what is missing.

-- Python Oban elects its leader in a table of its own (Elixir Oban and this runtime use
-- `oban_peers`), and a Python node with queues refuses to start without it. Its shape is the
-- one Python Oban's install gives it, so either side may create it.
CREATE UNLOGGED TABLE IF NOT EXISTS oban_leaders (
  name text PRIMARY KEY DEFAULT 'oban',
  node text NOT NULL,
  elected_at timestamp without time zone NOT NULL,
  expires_at timestamp without time zone NOT NULL
);

-- Python Oban's queue metrics ask the planner for an estimated count of jobs per state and
-- queue through this function. Created only where it is missing: an existing one (Python's
-- own) is kept as it is.
DO $$
BEGIN
  IF to_regprocedure('oban_count_estimate(text, text)') IS NULL THEN
    CREATE FUNCTION oban_count_estimate(state text, queue text) RETURNS integer
    LANGUAGE plpgsql AS $fn$
    DECLARE
      estimate jsonb;
    BEGIN
      -- The planner's row estimate for the count, read from its JSON plan: no rows are read.
      EXECUTE 'EXPLAIN (FORMAT JSON) SELECT 1 FROM oban_jobs
               WHERE state = $1::oban_job_state AND queue = $2'
        INTO estimate USING state, queue;
      RETURN (estimate->0->'Plan'->>'Plan Rows')::numeric::integer;
    END
    $fn$;
  END IF;
END$$;

-- Elixir Oban reads its schema version from the table's comment and runs its migrations
-- from there; its latest is 14, and this runtime's table (migration 001) stood for it, but was
-- labelled '15', a version Elixir Oban does not have (its `down` would look for a V15 to
-- undo). Corrected only where this runtime installed the table and the label is still ours.
DO $$
BEGIN
  IF obj_description('oban_jobs'::regclass, 'pg_class') = '15'
     AND EXISTS (SELECT 1 FROM oban_rust_migrations
                 WHERE version = 1 AND description = 'install oban_jobs') THEN
    COMMENT ON TABLE oban_jobs IS '14';
  END IF;
END$$;
