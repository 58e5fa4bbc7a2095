-- The claim never fails because of one row: an available job whose attempts are all spent
-- (`attempt >= max_attempts`) is discarded where the claim finds it instead of being run.
--
-- Such a row cannot come from this runtime's own paths, but it can come from a replay by SQL, an
-- older client, or another implementation sharing the table. Incrementing its attempt breaks the
-- `attempt_range` check (`attempt BETWEEN 0 AND max_attempts`), and before this version that
-- failed the whole claim: on every poll, on every node, so that no other job of its queue ever
-- ran again. Running it anyway would exceed the attempts its owner allowed; it is discarded as a
-- job whose last attempt failed is, with an entry in `errors` that says why.
--
-- What stays as version 004 made it (see 004_fetch.sql for the figures): the ordered scan of
-- oban_jobs_fetch_index that stops after `demand` rows (the SET clauses), the cursor, and the
-- claim committing without waiting for its WAL flush. A batch that comes back short still means
-- "nothing more to claim" to the producer, which then waits for its next wake-up.
--
-- The claim statement is version 004's, with one more filter: of the rows the scan locks, it
-- moves those with an attempt left (`attempt < max_attempts`, read from a tuple the scan holds
-- anyway). A full claim, the busy case, is the whole call: no other statement runs, and a
-- normal row costs one comparison more. Only a short claim runs a second statement, which
-- discards the spent rows: they are the first unlocked available rows with no attempt left after
-- the cursor (the rows claimed before them are executing now), so its scan stops after the
-- `wanted - claimed` it can have left. When it discarded some, runnable rows may lie after them,
-- and the claim runs again for what is missing; when it discarded none, the claim was short
-- because the queue has no more, and the call ends. At the tail of a queue and on an idle poll,
-- that second statement is one more scan of an index that holds only available jobs, which the
-- claim just walked. (Measured on a loaded 2-core machine, 1,000 calls of 100 rows each,
-- interleaved with version 004's function: 1.05-1.08 times its time, where two copies of
-- version 004 differ by 0.96-1.07; a drain of 100,000 jobs shows no difference beyond noise.)
--
-- `errors` is `jsonb[]` in the schemas Elixir Oban and this runtime install and `jsonb` (an
-- array) in the one Oban's Python port installs; `errors || <jsonb object>` appends one element
-- to either (as the acks do). The entry is Oban's `{"at", "attempt", "error"}`.
CREATE OR REPLACE FUNCTION oban_fetch_available(
  fetch_queue text, demand integer, fetched_by text[],
  after_priority integer, after_scheduled_at timestamp, after_id bigint)
RETURNS SETOF oban_jobs
LANGUAGE plpgsql
SET enable_bitmapscan = off
SET enable_seqscan = off
AS $$
DECLARE
  -- without a cursor, a position before every job: the scan starts at the head
  from_priority integer := coalesce(after_priority, -2147483648);
  from_scheduled_at timestamp := coalesce(after_scheduled_at, '-infinity');
  from_id bigint := coalesce(after_id, -9223372036854775808);
  wanted integer := demand;
  claimed integer;
BEGIN
  PERFORM set_config('synchronous_commit', 'off', true);
  LOOP
    RETURN QUERY
    WITH locked AS (
      SELECT j.id, j.attempt < j.max_attempts AS runnable FROM oban_jobs j
      WHERE j.state = 'available' AND j.queue = fetch_queue
        AND (j.priority, j.scheduled_at, j.id) > (from_priority, from_scheduled_at, from_id)
      ORDER BY j.priority, j.scheduled_at, j.id
      LIMIT wanted
      FOR UPDATE SKIP LOCKED
    )
    UPDATE oban_jobs j
    SET state = 'executing',
        attempt = j.attempt + 1,
        attempted_at = timezone('UTC', now()),
        attempted_by = fetched_by,
        -- a job keeps its unique key while executing only if executing is one of its unique states
        uniq_key = CASE WHEN j.uniq_key IS NOT NULL AND coalesce(j.meta->'uniq_states' ? 'executing', false)
                        THEN j.uniq_key END
    FROM locked
    WHERE j.id = locked.id AND locked.runnable
    RETURNING j.*;
    GET DIAGNOSTICS claimed = ROW_COUNT;
    EXIT WHEN claimed >= wanted;
    wanted := wanted - claimed;
    -- Short: the end of the queue, or spent rows among those locked. Discard the spent ones.
    WITH spent AS (
      SELECT j.id FROM oban_jobs j
      WHERE j.state = 'available' AND j.queue = fetch_queue
        AND (j.priority, j.scheduled_at, j.id) > (from_priority, from_scheduled_at, from_id)
        AND j.attempt >= j.max_attempts
      ORDER BY j.priority, j.scheduled_at, j.id
      LIMIT wanted
      FOR UPDATE SKIP LOCKED
    )
    UPDATE oban_jobs j
    SET state = 'discarded',
        discarded_at = timezone('UTC', now()),
        errors = j.errors || jsonb_build_object(
          'at', to_char(timezone('UTC', now()), 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
          'attempt', j.attempt,
          'error', format('discarded instead of run: the job was available with all of its '
                          'attempts spent (attempt %s of max_attempts %s), and running it '
                          'would exceed max_attempts; to run it again, retry it with a '
                          'higher max_attempts', j.attempt, j.max_attempts)),
        uniq_key = CASE WHEN j.uniq_key IS NOT NULL AND coalesce(j.meta->'uniq_states' ? 'discarded', false)
                        THEN j.uniq_key END
    FROM spent
    WHERE j.id = spent.id;
    -- None: the claim was short because nothing more is available.
    EXIT WHEN NOT FOUND;
  END LOOP;
END
$$;
