-- The fetch path: a partial index holding only available jobs, and the function that claims them.

-- Available jobs of one queue in the order they are worked. A job is in this index only while it
-- is available: fetching it, and every change of state after that, writes no entry here.
CREATE INDEX IF NOT EXISTS oban_jobs_fetch_index
  ON oban_jobs (queue, priority, scheduled_at, id) WHERE state = 'available';

-- Claims up to `demand` available jobs of `fetch_queue` for `fetched_by` ([node, producer uuid])
-- and returns them as they now are (executing, attempt + 1). With a cursor (`after_*`, the
-- position where the producer's last full batch ended), the scan starts after it: fetched jobs
-- leave dead entries at the head of the index until a vacuum, and a scan from the head walks
-- every one of them (measured: 0.86 ms for 50 jobs on a fresh table, 1.63 ms six seconds of
-- fetching later; with the cursor, 0.79 ms throughout).
--
-- Why a function: its SET clauses fix the plan to an ordered scan of oban_jobs_fetch_index that
-- stops after `demand` live rows and marks the dead entries it passes (so later scans skip
-- them). Statistics on a queue table are almost always stale; on the estimate of a few available
-- rows the planner otherwise picks a bitmap scan plus sort, which reads every entry of the queue,
-- dead or alive, on every fetch and never marks any (measured: 2.0 ms for 100 jobs with the
-- ordered scan, 4.6 ms and growing with the bitmap scan, until a VACUUM).
--
-- The claim commits without waiting for its WAL flush (synchronous_commit off for this
-- transaction only). Losing it in a database crash loses nothing: the job is available again and
-- runs again, as it would if the node had died. The outcome of the attempt commits durably, and
-- PostgreSQL writes WAL in order, so a durable outcome implies a durable claim.
CREATE OR REPLACE FUNCTION oban_fetch_available(
  fetch_queue text, demand integer, fetched_by text[],
  after_priority integer, after_scheduled_at timestamp, after_id bigint)
RETURNS SETOF oban_jobs
LANGUAGE plpgsql
SET enable_bitmapscan = off
SET enable_seqscan = off
AS $$
BEGIN
  PERFORM set_config('synchronous_commit', 'off', true);
  RETURN QUERY
  WITH locked AS (
    SELECT j.id FROM oban_jobs j
    WHERE j.state = 'available' AND j.queue = fetch_queue
      -- without a cursor, a position before every job: the scan starts at the head
      AND (j.priority, j.scheduled_at, j.id) > (coalesce(after_priority, -2147483648),
                                                coalesce(after_scheduled_at, '-infinity'),
                                                coalesce(after_id, -9223372036854775808))
    ORDER BY j.priority, j.scheduled_at, j.id
    LIMIT demand
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
  WHERE j.id = locked.id
  RETURNING j.*;
END
$$;
