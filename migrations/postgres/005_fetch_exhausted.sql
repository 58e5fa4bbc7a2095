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
-- claim committing without waiting for its WAL flush. The changes, and their cost for a normal
-- row:
--
-- - The scan (`locked`) also reads `attempt < max_attempts` from the row it locks anyway: one
--   comparison of two columns of a tuple already in hand.
-- - The claim (`UPDATE ... RETURNING`) is the same statement with one more filter on that flag;
--   its SET clauses, and so the row it writes, are unchanged: no CASE per column.
-- - The discard is a second UPDATE in the same statement (a data-modifying CTE) over the locked
--   rows whose flag is false. For a normal batch it reads the locked rows, keeps none, and writes
--   nothing.
-- - Only claimed rows are returned. A batch that comes back short means "nothing more to claim"
--   to the producer, which then waits for the next wake-up; a round that discarded rows may have
--   left claimable ones behind, so a short round looks once more (`probe`: the first unlocked
--   available row after the cursor) and, if there is one, claims again for what is missing. A
--   full round, the busy case, never probes; a short one (the tail of a queue, an idle poll)
--   probes once, one more scan of an index that holds only the queue's available jobs.
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
    ),
    spent AS (
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
      FROM locked
      WHERE j.id = locked.id AND NOT locked.runnable
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
    wanted := wanted - claimed;
    EXIT WHEN wanted <= 0;
    -- Short: the queue's end, or rows discarded. Claim again only if something is claimable.
    PERFORM FROM oban_jobs j
    WHERE j.state = 'available' AND j.queue = fetch_queue
      AND (j.priority, j.scheduled_at, j.id) > (from_priority, from_scheduled_at, from_id)
    ORDER BY j.priority, j.scheduled_at, j.id
    LIMIT 1
    FOR UPDATE SKIP LOCKED;
    EXIT WHEN NOT FOUND;
  END LOOP;
END
$$;
