-- Executing jobs, for the lifeline: it looks for jobs no live producer holds every few seconds
-- (maintenance/lifeline.rs), and without this index each pass would read the whole table.
--
-- Partial, like the fetch index: a job takes one entry when it is claimed and none for any other
-- state, so the index holds about as many live entries as jobs run at once, and a pass costs
-- that many rows whatever the size of the table. Acks match it by `state::text`, which keeps
-- them on the primary key (engines/postgres/ack.rs). On a very large table, create the same
-- index CONCURRENTLY beforehand; this step then finds it in place.
CREATE INDEX IF NOT EXISTS oban_jobs_executing_index
  ON oban_jobs (attempted_at) WHERE state = 'executing';
