-- Flow control across the fleet (oban-core/src/limits/): a queue's global limit (jobs running at
-- once on every node together) and rate limit (starts per period on every node together), each
-- optionally split into partitions that each get the whole limit.

-- One row per limited queue: the `Limits` of oban-core/src/limits/mod.rs as JSON
-- (`{"global": {"allowed", "partition"}, "rate": {"allowed", "period_secs", "partition"}}`, a
-- partition as Elixir Oban Pro stores one: `{"fields": ["worker", "args"], "keys": [..]}`).
-- Every fetch of the queue locks its row: fetches of a limited queue take turns, on every node.
CREATE TABLE IF NOT EXISTS oban_rust_queue_limits (
  queue text PRIMARY KEY,
  limits jsonb NOT NULL,
  updated_at timestamp without time zone NOT NULL DEFAULT timezone('UTC', now())
);

-- Starts of rate-limited queues, counted per partition in buckets of a sixtieth of the period
-- (`bucket_ms`, milliseconds since the epoch, UTC). A fetch deletes its queue's buckets that left
-- the window, so the table holds at most about 61 rows per partition that started jobs lately.
CREATE TABLE IF NOT EXISTS oban_rust_rate_buckets (
  queue text NOT NULL,
  partition text NOT NULL,
  bucket_ms bigint NOT NULL,
  starts integer NOT NULL,
  PRIMARY KEY (queue, partition, bucket_ms)
);

-- The partition of a job under `spec` (a stored partition, or NULL for none): '' for none, else
-- the worker and/or the JSON of the chosen args keys (all of the args without keys), joined by
-- U+001F. Only compared with itself: oban-core/src/limits/partition.rs has SQLite's form.
CREATE OR REPLACE FUNCTION oban_rust_partition(worker text, args jsonb, spec jsonb)
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
  SELECT CASE
    WHEN spec IS NULL OR NOT (spec->'fields' ? 'worker' OR spec->'fields' ? 'args') THEN ''
    ELSE
      CASE WHEN spec->'fields' ? 'worker' THEN worker ELSE '' END
      || CASE WHEN NOT spec->'fields' ? 'args' THEN ''
              WHEN coalesce(jsonb_array_length(spec->'keys'), 0) = 0 THEN E'\x1f' || args::text
              WHEN jsonb_array_length(spec->'keys') = 1
                THEN E'\x1f' || jsonb_build_array(args -> (spec->'keys'->>0))::text
              ELSE E'\x1f' || (SELECT jsonb_agg(args -> key ORDER BY place)::text
                               FROM jsonb_array_elements_text(spec->'keys')
                                    WITH ORDINALITY AS keys(key, place))
         END
  END
$$;

-- The claim of a queue that may be limited: moves to `executing` what fits the queue's limits,
-- at most `demand` jobs, and returns them. Without a limits row it is `oban_fetch_available`.
--
-- Under the row's lock it counts what the limits count: the queue's `executing` jobs (per
-- partition of the global limit) and the starts in the rate window (per partition of the rate
-- limit, from the buckets). Unpartitioned limits bound how many jobs the claim takes, which is
-- then `oban_fetch_available`'s claim. Partitioned ones take the walk: the available jobs in the
-- queue's order, each partition taking as many as it has room for (and at most `demand`) and
-- passing over the rest, until `walk` jobs are taken or the queue ends; of those, the claim
-- takes in rounds, a job's round being what its partition already uses (jobs running, or starts
-- in the window) plus its rank among the partition's jobs taken, until `demand`: the least used
-- partitions first, ties in the queue's order. So a partition with a huge backlog gets its room
-- and no more, and while it runs more than the partitions behind it, they come first. A pass that discarded spent jobs is
-- repeated for the room they took, as `oban_fetch_available` does.
--
-- A start is counted at the transaction's time, which is also the claimed jobs' `attempted_at`;
-- a bucket counts while any of it lies in the window, and every bucket later than the window's
-- start counts, also one a fetch that took the lock earlier wrote with a later time. So in any
-- window of the period, by `attempted_at`, no more than `allowed` jobs of a partition start.
CREATE OR REPLACE FUNCTION oban_fetch_limited(fetch_queue text, demand integer, fetched_by text[])
RETURNS SETOF oban_jobs
LANGUAGE plpgsql
SET enable_bitmapscan = off
SET enable_seqscan = off
AS $$
DECLARE
  limits jsonb;
  g_allowed integer;
  g_spec jsonb;
  g_parted boolean;
  r_allowed integer;
  r_spec jsonb;
  r_parted boolean;
  width_ms bigint;
  now_ms bigint := floor(extract(epoch FROM timezone('UTC', now())) * 1000)::bigint;
  since_ms bigint;
  room integer := demand;
  used integer;
  walk integer;
  picked bigint[];
  spent integer;
  g_used jsonb;
  r_used jsonb;
  g_taken jsonb;
  r_taken jsonb;
  g_key text;
  r_key text;
  g_rank integer;
  r_rank integer;
  found_ids bigint[];
  found_rounds integer[];
  job record;
BEGIN
  PERFORM set_config('synchronous_commit', 'off', true);
  SELECT l.limits INTO limits FROM oban_rust_queue_limits l WHERE l.queue = fetch_queue FOR UPDATE;
  g_allowed := (limits->'global'->>'allowed')::integer;
  r_allowed := (limits->'rate'->>'allowed')::integer;
  IF g_allowed IS NULL AND r_allowed IS NULL THEN
    RETURN QUERY SELECT * FROM oban_fetch_available(fetch_queue, demand, fetched_by, NULL, NULL, NULL);
    RETURN;
  END IF;
  g_spec := CASE WHEN g_allowed IS NOT NULL THEN limits->'global'->'partition' END;
  g_parted := oban_rust_partition('w', '{}', g_spec) <> '';
  r_spec := CASE WHEN r_allowed IS NOT NULL THEN limits->'rate'->'partition' END;
  r_parted := oban_rust_partition('w', '{}', r_spec) <> '';

  IF r_allowed IS NOT NULL THEN
    width_ms := greatest((limits->'rate'->>'period_secs')::bigint * 1000 / 60, 1);
    since_ms := now_ms - (limits->'rate'->>'period_secs')::bigint * 1000 - width_ms;
    DELETE FROM oban_rust_rate_buckets b WHERE b.queue = fetch_queue AND b.bucket_ms <= since_ms;
    IF NOT r_parted THEN
      SELECT coalesce(sum(b.starts), 0) INTO used FROM oban_rust_rate_buckets b
      WHERE b.queue = fetch_queue AND b.partition = '';
      room := least(room, r_allowed - used);
    END IF;
  END IF;
  IF g_allowed IS NOT NULL AND NOT g_parted THEN
    SELECT count(*) INTO used FROM oban_jobs j WHERE j.state = 'executing' AND j.queue = fetch_queue;
    room := least(room, g_allowed - used);
  END IF;
  IF room <= 0 THEN
    RETURN;
  END IF;

  IF g_parted OR r_parted THEN
    -- Repeated while a pass discarded spent jobs: they took room the jobs behind them may use,
    -- and a short claim tells the producer that the queue is empty.
    LOOP
      walk := greatest(room * 8, 200);
      SELECT coalesce(jsonb_object_agg(f.key, f.used), '{}') INTO g_used FROM (
        SELECT oban_rust_partition(j.worker, j.args, g_spec) AS key, count(*) AS used
        FROM oban_jobs j
        WHERE g_parted AND j.state = 'executing' AND j.queue = fetch_queue
        GROUP BY 1
      ) f;
      SELECT coalesce(jsonb_object_agg(f.key, f.used), '{}') INTO r_used FROM (
        SELECT b.partition AS key, sum(b.starts) AS used
        FROM oban_rust_rate_buckets b
        WHERE r_parted AND b.queue = fetch_queue
        GROUP BY 1
      ) f;
      -- The walk: each partition takes the jobs it has room for (at most `room`), in the
      -- queue's order, the others are passed over; a job's round is what its partition already
      -- uses (runs, or started in the window) plus its rank among the partition's jobs taken.
      g_taken := '{}';
      r_taken := '{}';
      found_ids := '{}';
      found_rounds := '{}';
      -- (The keys are computed in the query, where the SQL function is inlined.)
      FOR job IN
        SELECT j.id,
               CASE WHEN g_parted THEN oban_rust_partition(j.worker, j.args, g_spec) ELSE '' END AS g_key,
               CASE WHEN r_parted THEN oban_rust_partition(j.worker, j.args, r_spec) ELSE '' END AS r_key
        FROM oban_jobs j
        WHERE j.state = 'available' AND j.queue = fetch_queue
        ORDER BY j.priority, j.scheduled_at, j.id
      LOOP
        g_key := job.g_key;
        r_key := job.r_key;
        g_rank := coalesce((g_taken->>g_key)::integer, 0) + 1;
        r_rank := coalesce((r_taken->>r_key)::integer, 0) + 1;
        IF (NOT g_parted OR g_rank <= least(room, g_allowed - coalesce((g_used->>g_key)::integer, 0)))
           AND (NOT r_parted OR r_rank <= least(room, r_allowed - coalesce((r_used->>r_key)::integer, 0))) THEN
          IF g_parted THEN
            g_taken := jsonb_set(g_taken, ARRAY[g_key], to_jsonb(g_rank));
          END IF;
          IF r_parted THEN
            r_taken := jsonb_set(r_taken, ARRAY[r_key], to_jsonb(r_rank));
          END IF;
          found_ids := found_ids || job.id;
          found_rounds := found_rounds || greatest(
            CASE WHEN g_parted THEN coalesce((g_used->>g_key)::integer, 0) + g_rank ELSE 0 END,
            CASE WHEN r_parted THEN coalesce((r_used->>r_key)::integer, 0) + r_rank ELSE 0 END);
          EXIT WHEN cardinality(found_ids) >= walk;
        END IF;
      END LOOP;
      -- Rounds, up to `room`: the least used partitions first, then in the queue's order.
      SELECT array_agg(l.id) INTO picked FROM (
        SELECT j.id FROM oban_jobs j
        WHERE j.id IN (
            SELECT f.id FROM unnest(found_ids, found_rounds) WITH ORDINALITY AS f(id, round, place)
            ORDER BY f.round, f.place
            LIMIT room)
          AND j.state = 'available'
        FOR UPDATE OF j SKIP LOCKED
      ) l;
      IF picked IS NULL THEN
        RETURN;
      END IF;
      -- A picked job with no attempt left is discarded instead, as oban_fetch_available does.
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
      WHERE j.id = ANY(picked) AND j.attempt >= j.max_attempts;
      GET DIAGNOSTICS spent = ROW_COUNT;
      RETURN QUERY
      WITH claimed AS (
        UPDATE oban_jobs j
        SET state = 'executing',
            attempt = j.attempt + 1,
            attempted_at = timezone('UTC', now()),
            attempted_by = fetched_by,
            uniq_key = CASE WHEN j.uniq_key IS NOT NULL AND coalesce(j.meta->'uniq_states' ? 'executing', false)
                            THEN j.uniq_key END
        WHERE j.id = ANY(picked) AND j.attempt < j.max_attempts
        RETURNING j.*
      ), counted AS (
        INSERT INTO oban_rust_rate_buckets AS b (queue, partition, bucket_ms, starts)
        SELECT fetch_queue, oban_rust_partition(c.worker, c.args, r_spec), now_ms - now_ms % width_ms, count(*)
        FROM claimed c
        WHERE r_allowed IS NOT NULL
        GROUP BY 2
        ON CONFLICT (queue, partition, bucket_ms) DO UPDATE SET starts = b.starts + excluded.starts
      )
      SELECT * FROM claimed;
      -- The next pass counts this one's claims (executing, and in the buckets) as used.
      room := room - (cardinality(picked) - spent);
      EXIT WHEN spent = 0 OR room <= 0;
    END LOOP;
  ELSE
    RETURN QUERY
    WITH claimed AS (
      SELECT * FROM oban_fetch_available(fetch_queue, room, fetched_by, NULL, NULL, NULL)
    ), counted AS (
      INSERT INTO oban_rust_rate_buckets AS b (queue, partition, bucket_ms, starts)
      SELECT fetch_queue, '', now_ms - now_ms % width_ms, count(*)
      FROM claimed c
      WHERE r_allowed IS NOT NULL
      HAVING count(*) > 0
      ON CONFLICT (queue, partition, bucket_ms) DO UPDATE SET starts = b.starts + excluded.starts
    )
    SELECT * FROM claimed;
  END IF;
END
$$;
