-- Oban's job table, as Elixir Oban's migrations V01..V14 leave it, for a database that has none.
-- Applied only when `oban_jobs` does not exist yet: an existing table (installed by Elixir Oban,
-- Oban's Python port or an earlier run) is never altered destructively.

DO $$
BEGIN
  IF to_regtype('oban_job_state') IS NULL THEN
    CREATE TYPE oban_job_state AS ENUM (
      'available', 'suspended', 'scheduled', 'executing', 'retryable', 'completed', 'discarded', 'cancelled'
    );
  END IF;
END$$;

CREATE TABLE IF NOT EXISTS oban_jobs (
  id bigserial PRIMARY KEY,
  state oban_job_state NOT NULL DEFAULT 'available',
  queue text NOT NULL DEFAULT 'default',
  worker text NOT NULL,
  args jsonb NOT NULL DEFAULT '{}',
  errors jsonb[] NOT NULL DEFAULT ARRAY[]::jsonb[],
  attempt integer NOT NULL DEFAULT 0,
  max_attempts integer NOT NULL DEFAULT 20,
  inserted_at timestamp without time zone NOT NULL DEFAULT timezone('UTC', now()),
  scheduled_at timestamp without time zone NOT NULL DEFAULT timezone('UTC', now()),
  attempted_at timestamp without time zone,
  completed_at timestamp without time zone,
  attempted_by text[],
  discarded_at timestamp without time zone,
  priority integer NOT NULL DEFAULT 0,
  tags text[] DEFAULT ARRAY[]::text[],
  meta jsonb DEFAULT '{}',
  cancelled_at timestamp without time zone,
  CONSTRAINT worker_length CHECK (char_length(worker) > 0 AND char_length(worker) < 128),
  CONSTRAINT queue_length CHECK (char_length(queue) > 0 AND char_length(queue) < 128),
  CONSTRAINT positive_max_attempts CHECK (max_attempts > 0),
  CONSTRAINT attempt_range CHECK (attempt BETWEEN 0 AND max_attempts),
  CONSTRAINT non_negative_priority CHECK (priority >= 0)
);

-- Every change of state writes a new row version, and each version needs an entry in every
-- index whose predicate it meets (state is indexed, so no update is HOT). Indexes are therefore
-- kept to what the runtime reads; partial where a state predicate allows.
--
-- Fetching uses a partial index on available jobs (migration 004), so a job leaves it when it
-- starts and no later change of state writes to it. Elixir Oban's full
-- (state, queue, priority, scheduled_at, id) index is not created: it took an entry for every
-- row version of every state, a third of the index writes of a job's life.
-- Staging scheduled and retryable jobs.
CREATE INDEX IF NOT EXISTS oban_jobs_staging_idx
  ON oban_jobs (scheduled_at, id) WHERE state IN ('scheduled', 'retryable');
-- Pruning finished jobs by age (Elixir Oban's V13 names; partial, so running jobs skip them).
CREATE INDEX IF NOT EXISTS oban_jobs_state_cancelled_at_index
  ON oban_jobs (state, cancelled_at) WHERE state = 'cancelled';
CREATE INDEX IF NOT EXISTS oban_jobs_state_discarded_at_index
  ON oban_jobs (state, discarded_at) WHERE state = 'discarded';
-- Elixir nodes sharing a database installed here find their fetch (state and queue) served by
-- the partial index; their dashboards' counts by state scan the table. Add Elixir Oban's index
-- where that matters:
--   CREATE INDEX CONCURRENTLY oban_jobs_state_queue_priority_scheduled_at_id_index
--     ON oban_jobs (state, queue, priority, scheduled_at, id);
-- Elixir Oban also creates GIN indexes on args and meta for its read-before-write unique
-- checks. This runtime's uniqueness uses uniq_key instead, and the two GIN indexes would double
-- the index writes of every state change, so they are not created here. A database shared with
-- Elixir nodes that use unique jobs on large tables should add them:
--   CREATE INDEX CONCURRENTLY oban_jobs_args_index ON oban_jobs USING gin (args);
--   CREATE INDEX CONCURRENTLY oban_jobs_meta_index ON oban_jobs USING gin (meta);

-- Elixir Oban reads its schema version from this comment; the table above stands for its latest,
-- version 14 (its migrator then has nothing to do, and its nodes start). Until migration 007 this
-- said '15', a version Elixir Oban does not have; 007 corrects databases installed with it.
COMMENT ON TABLE oban_jobs IS '14';
