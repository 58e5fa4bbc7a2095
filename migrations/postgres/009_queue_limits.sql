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

-- The buckets that left the window, which every fetch of a rate-limited queue deletes: without
-- it, the delete reads every bucket of the queue.
CREATE INDEX IF NOT EXISTS oban_rust_rate_buckets_expiry_index
  ON oban_rust_rate_buckets (queue, bucket_ms);

-- Per queue and partition, the starts of its buckets above: kept with them by the claim (under
-- the queue's row lock), so that a claim of a queue with a partitioned rate limit reads one row
-- per partition that started jobs in the window rather than summing up to 61 buckets of each
-- (measured: with 1,000 partitions, summing the buckets on every claim held the lock for tens of
-- milliseconds and capped the queue at about 500 jobs/s).
CREATE TABLE IF NOT EXISTS oban_rust_rate_totals (
  queue text NOT NULL,
  partition text NOT NULL,
  starts integer NOT NULL,
  PRIMARY KEY (queue, partition)
);

-- The partition of a job under `spec` (a stored partition, or NULL for none): '' for none, else
-- the worker and/or the JSON array of the chosen args keys' values (all of the args without
-- keys; at most four keys, as `Limits::check` allows), joined by U+001F. Only compared with
-- itself: oban-core/src/limits/partition.rs has SQLite's form. One expression without a
-- subquery, and STABLE like `jsonb_build_array`, so that the planner inlines it into the walk:
-- called as a function it costs several times more per job passed over.
CREATE OR REPLACE FUNCTION oban_rust_partition(worker text, args jsonb, spec jsonb)
RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
  SELECT CASE
    WHEN spec IS NULL OR NOT (spec->'fields' ? 'worker' OR spec->'fields' ? 'args') THEN ''
    ELSE
      CASE WHEN spec->'fields' ? 'worker' THEN worker ELSE '' END
      || CASE WHEN NOT spec->'fields' ? 'args' THEN ''
              ELSE E'\x1f' || CASE coalesce(jsonb_array_length(spec->'keys'), 0)
                WHEN 0 THEN args
                WHEN 1 THEN jsonb_build_array(args -> (spec->'keys'->>0))
                WHEN 2 THEN jsonb_build_array(args -> (spec->'keys'->>0), args -> (spec->'keys'->>1))
                WHEN 3 THEN jsonb_build_array(args -> (spec->'keys'->>0), args -> (spec->'keys'->>1),
                                              args -> (spec->'keys'->>2))
                ELSE jsonb_build_array(args -> (spec->'keys'->>0), args -> (spec->'keys'->>1),
                                       args -> (spec->'keys'->>2), args -> (spec->'keys'->>3))
              END::text
         END
  END
$$;

-- The claim of a queue that may be limited: moves to `executing` what fits the queue's limits,
-- at most `demand` jobs, and returns them. Without a limits row it is `oban_fetch_available`.
--
-- Under the row's lock it counts what the limits count: the queue's `executing` jobs (per
-- partition of the global limit) and the starts in the rate window (per partition of the rate
-- limit, from the buckets' totals). Unpartitioned limits bound how many jobs the claim takes, which is
-- then `oban_fetch_available`'s claim. Partitioned ones take the walk, in passes of one statement
-- each: the available jobs in the queue's order, each partition keeping as many as it has room
-- for (and at most `demand`); a partition with more in a pass is saturated, and later passes,
-- which go on where the last one stopped, pass over its jobs as they pass over those of full
-- partitions (at the speed of a filter), until twice the demand is found, the queue ends, or no
-- partition saturated. Of what was found, the claim takes in rounds, a job's round being what its
-- partition already uses (jobs running, or starts in the window) plus its rank among the
-- partition's jobs found, until `demand`: the least used partitions first, ties in the queue's
-- order. So a partition with a huge backlog gets its room and no more, and while it runs more
-- than the partitions behind it, they come first. A claim that discarded spent jobs is repeated
-- for the room they took, as `oban_fetch_available` does.
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
  found_ids bigint[];
  found_rounds bigint[];
  pass_ids bigint[];
  pass_rounds bigint[];
  g_passed text[];
  r_passed text[];
  g_saturated text[];
  r_saturated text[];
  walked integer;
  passes integer;
  after_priority integer;
  after_scheduled_at timestamp;
  after_id bigint;
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
    WITH expired AS (
      DELETE FROM oban_rust_rate_buckets b WHERE b.queue = fetch_queue AND b.bucket_ms <= since_ms
      RETURNING b.partition, b.starts
    ), gone AS (
      SELECT e.partition, sum(e.starts)::integer AS starts FROM expired e GROUP BY 1
    )
    UPDATE oban_rust_rate_totals t SET starts = t.starts - g.starts
    FROM gone g
    WHERE t.queue = fetch_queue AND t.partition = g.partition;
    IF FOUND THEN
      DELETE FROM oban_rust_rate_totals t WHERE t.queue = fetch_queue AND t.starts <= 0;
    END IF;
    IF NOT r_parted THEN
      SELECT coalesce(sum(t.starts), 0) INTO used FROM oban_rust_rate_totals t
      WHERE t.queue = fetch_queue AND t.partition = '';
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
      walk := greatest(room * 2, 20);
      found_ids := '{}';
      found_rounds := '{}';
      g_passed := '{}';
      r_passed := '{}';
      after_priority := NULL;
      after_scheduled_at := NULL;
      after_id := NULL;
      passes := 0;
      -- The walk, in passes of one statement each: the available jobs in the queue's order after
      -- the last pass, passing over full partitions and those a pass saturated; in a pass each
      -- partition keeps as many jobs as it has room for (and at most `room`); a partition with
      -- more in the pass is saturated: later passes pass over its jobs, at the speed of a filter.
      LOOP
        passes := passes + 1;
        WITH g_use AS (
          SELECT oban_rust_partition(j.worker, j.args, g_spec) AS key, count(*)::bigint AS used
          FROM oban_jobs j
          WHERE g_parted AND j.state = 'executing' AND j.queue = fetch_queue
          GROUP BY 1
        ), r_use AS (
          SELECT t.partition AS key, t.starts::bigint AS used
          FROM oban_rust_rate_totals t
          WHERE r_parted AND t.queue = fetch_queue
        ), stretch AS (
          SELECT w.* FROM (
            SELECT j.id, j.priority, j.scheduled_at,
                   CASE WHEN g_parted THEN oban_rust_partition(j.worker, j.args, g_spec) ELSE '' END AS g_key,
                   CASE WHEN r_parted THEN oban_rust_partition(j.worker, j.args, r_spec) ELSE '' END AS r_key
            FROM oban_jobs j
            WHERE j.state = 'available' AND j.queue = fetch_queue
              AND (j.priority, j.scheduled_at, j.id) >
                  (coalesce(after_priority, -2147483648), coalesce(after_scheduled_at, '-infinity'),
                   coalesce(after_id, -9223372036854775808))
            ORDER BY j.priority, j.scheduled_at, j.id
          ) w
          WHERE NOT (w.g_key = ANY(g_passed)) AND NOT (w.r_key = ANY(r_passed))
            AND NOT EXISTS (SELECT 1 FROM g_use g WHERE g.key = w.g_key AND g.used >= g_allowed)
            AND NOT EXISTS (SELECT 1 FROM r_use r WHERE r.key = w.r_key AND r.used >= r_allowed)
          LIMIT walk
        ), ranked AS (
          SELECT k.*,
                 row_number() OVER (PARTITION BY k.g_key ORDER BY k.priority, k.scheduled_at, k.id) AS g_rank,
                 row_number() OVER (PARTITION BY k.r_key ORDER BY k.priority, k.scheduled_at, k.id) AS r_rank,
                 least(room, g_allowed - coalesce(g.used, 0)) AS g_room,
                 least(room, r_allowed - coalesce(r.used, 0)) AS r_room,
                 coalesce(g.used, 0) AS g_used,
                 coalesce(r.used, 0) AS r_used
          FROM stretch k
          LEFT JOIN g_use g ON g.key = k.g_key
          LEFT JOIN r_use r ON r.key = k.r_key
        ), judged AS (
          SELECT k.*,
                 (NOT g_parted OR k.g_rank <= k.g_room) AND (NOT r_parted OR k.r_rank <= k.r_room) AS fits,
                 greatest(CASE WHEN g_parted THEN k.g_used + k.g_rank ELSE 0 END,
                          CASE WHEN r_parted THEN k.r_used + k.r_rank ELSE 0 END) AS round
          FROM ranked k
        )
        SELECT coalesce(array_agg(k.id ORDER BY k.priority, k.scheduled_at, k.id) FILTER (WHERE k.fits), '{}'),
               coalesce(array_agg(k.round ORDER BY k.priority, k.scheduled_at, k.id) FILTER (WHERE k.fits), '{}'),
               coalesce(array_agg(DISTINCT k.g_key) FILTER (WHERE g_parted AND k.g_rank > k.g_room), '{}'),
               coalesce(array_agg(DISTINCT k.r_key) FILTER (WHERE r_parted AND k.r_rank > k.r_room), '{}'),
               count(*),
               (array_agg(k.priority ORDER BY k.priority DESC, k.scheduled_at DESC, k.id DESC))[1],
               (array_agg(k.scheduled_at ORDER BY k.priority DESC, k.scheduled_at DESC, k.id DESC))[1],
               (array_agg(k.id ORDER BY k.priority DESC, k.scheduled_at DESC, k.id DESC))[1]
        INTO pass_ids, pass_rounds, g_saturated, r_saturated, walked,
             after_priority, after_scheduled_at, after_id
        FROM judged k;
        found_ids := found_ids || pass_ids;
        found_rounds := found_rounds || pass_rounds;
        g_passed := g_passed || g_saturated;
        r_passed := r_passed || r_saturated;
        -- Done at the end of the queue, with enough to choose from, when no partition saturated
        -- (the next pass would only go on where this one stopped), or after a few passes.
        EXIT WHEN walked < walk OR cardinality(found_ids) >= walk
          OR (cardinality(g_saturated) = 0 AND cardinality(r_saturated) = 0) OR passes >= 8;
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
      ), started AS (
        SELECT oban_rust_partition(c.worker, c.args, r_spec) AS partition, count(*)::integer AS starts
        FROM claimed c
        WHERE r_allowed IS NOT NULL
        GROUP BY 1
      ), counted AS (
        INSERT INTO oban_rust_rate_buckets AS b (queue, partition, bucket_ms, starts)
        SELECT fetch_queue, s.partition, now_ms - now_ms % width_ms, s.starts
        FROM started s
        ON CONFLICT (queue, partition, bucket_ms) DO UPDATE SET starts = b.starts + excluded.starts
      ), totalled AS (
        INSERT INTO oban_rust_rate_totals AS t (queue, partition, starts)
        SELECT fetch_queue, s.partition, s.starts
        FROM started s
        ON CONFLICT (queue, partition) DO UPDATE SET starts = t.starts + excluded.starts
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
    ), started AS (
      SELECT count(*)::integer AS starts
      FROM claimed c
      WHERE r_allowed IS NOT NULL
      HAVING count(*) > 0
    ), counted AS (
      INSERT INTO oban_rust_rate_buckets AS b (queue, partition, bucket_ms, starts)
      SELECT fetch_queue, '', now_ms - now_ms % width_ms, s.starts
      FROM started s
      ON CONFLICT (queue, partition, bucket_ms) DO UPDATE SET starts = b.starts + excluded.starts
    ), totalled AS (
      INSERT INTO oban_rust_rate_totals AS t (queue, partition, starts)
      SELECT fetch_queue, '', s.starts
      FROM started s
      ON CONFLICT (queue, partition) DO UPDATE SET starts = t.starts + excluded.starts
    )
    SELECT * FROM claimed;
  END IF;
END
$$;
