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

-- The JSON array of the values of `keys` (a JSON array of names) in `args`, in order: the
-- partition of a job under a partition by two or more args keys.
CREATE OR REPLACE FUNCTION oban_rust_partition_keys(args jsonb, keys jsonb)
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
  SELECT jsonb_agg(args -> key ORDER BY place)::text
  FROM jsonb_array_elements_text(keys) WITH ORDINALITY AS k(key, place)
$$;

-- The partition of a job under `spec` (a stored partition, or NULL for none): '' for none, else
-- the worker and/or the JSON of the chosen args keys (all of the args without keys), joined by
-- U+001F. Only compared with itself: oban-core/src/limits/partition.rs has SQLite's form.
--
-- One expression of immutable functions without a subquery, so that PostgreSQL inlines it into
-- the claim's walk (a sublink or a stable function such as jsonb_build_array would prevent it):
-- called as a function, it cost about 9 us a row, 0.9 s for a fetch passing over 100,000 jobs of
-- a full partition (examples/limits_bench.rs, part `walk`); inlined, about 1 us a row. Two or
-- more keys call oban_rust_partition_keys; one key spells out jsonb_build_array's text.
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
                THEN E'\x1f[' || coalesce((args -> (spec->'keys'->>0))::text, 'null') || ']'
              ELSE E'\x1f' || oban_rust_partition_keys(args, spec->'keys')
         END
  END
$$;

-- The claim of a queue that may be limited: moves to `executing` what fits the queue's limits,
-- at most `demand` jobs, and returns them. Without a limits row it is `oban_fetch_available`.
--
-- Under the row's lock it counts what the limits count: the queue's `executing` jobs (per
-- partition of the global limit) and the starts in the rate window (per partition of the rate
-- limit, from the buckets, or their totals per partition). Unpartitioned limits bound how many jobs the claim takes, which is
-- then `oban_fetch_available`'s claim. Partitioned ones take the walk: the available jobs in the
-- queue's order, passing over those of full partitions, the first `walk` of the rest, from which
-- each partition takes what it has room for, in rounds (every partition's first job, then every
-- one's second ...) until `demand`: a partition with a huge backlog gets its room and no more.
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
    walk := greatest(room * 8, 200);
    WITH g_full AS (
      SELECT oban_rust_partition(j.worker, j.args, g_spec) AS key, count(*)::integer AS used
      FROM oban_jobs j
      WHERE g_parted AND j.state = 'executing' AND j.queue = fetch_queue
      GROUP BY 1
    ), r_full AS (
      SELECT t.partition AS key, t.starts AS used
      FROM oban_rust_rate_totals t
      WHERE r_parted AND t.queue = fetch_queue
    ), candidates AS (
      SELECT w.* FROM (
        SELECT j.id, j.priority, j.scheduled_at,
               CASE WHEN g_parted THEN oban_rust_partition(j.worker, j.args, g_spec) ELSE '' END AS g_key,
               CASE WHEN r_parted THEN oban_rust_partition(j.worker, j.args, r_spec) ELSE '' END AS r_key
        FROM oban_jobs j
        WHERE j.state = 'available' AND j.queue = fetch_queue
        ORDER BY j.priority, j.scheduled_at, j.id
      ) w
      WHERE NOT EXISTS (SELECT 1 FROM g_full g WHERE g.key = w.g_key AND g.used >= g_allowed)
        AND NOT EXISTS (SELECT 1 FROM r_full r WHERE r.key = w.r_key AND r.used >= r_allowed)
      LIMIT walk
    ), ranked AS (
      SELECT o.*,
             row_number() OVER (PARTITION BY o.g_key ORDER BY o.priority, o.scheduled_at, o.id) AS g_rank,
             row_number() OVER (PARTITION BY o.r_key ORDER BY o.priority, o.scheduled_at, o.id) AS r_rank
      FROM candidates o
    ), chosen AS (
      SELECT k.id FROM ranked k
      LEFT JOIN g_full g ON g.key = k.g_key
      LEFT JOIN r_full r ON r.key = k.r_key
      WHERE (NOT g_parted OR k.g_rank <= g_allowed - coalesce(g.used, 0))
        AND (NOT r_parted OR k.r_rank <= r_allowed - coalesce(r.used, 0))
      ORDER BY greatest(CASE WHEN g_parted THEN k.g_rank ELSE 0 END,
                        CASE WHEN r_parted THEN k.r_rank ELSE 0 END),
               k.priority, k.scheduled_at, k.id
      LIMIT room
    )
    SELECT array_agg(l.id) INTO picked FROM (
      SELECT j.id FROM oban_jobs j
      WHERE j.id IN (SELECT c.id FROM chosen c) AND j.state = 'available'
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
