-- Sequences (oban-core/src/sequence.rs): jobs whose meta names a `sequence` run one at a time,
-- in id order. Two partial indexes serve the checks of the insert and of the release
-- (engines/postgres/sequence.rs); jobs outside sequences take no entry in either.
--
-- The jobs that hold their sequence and are not waiting: the one running (or about to run, or
-- retrying), and under the hold rule a discarded or cancelled one. About one entry per busy
-- sequence, whatever the number of jobs waiting behind it.
CREATE INDEX IF NOT EXISTS oban_jobs_rust_sequence_active_index
  ON oban_jobs ((meta->>'sequence'))
  WHERE meta ? 'sequence' AND state NOT IN ('completed', 'suspended')
    AND (state NOT IN ('discarded', 'cancelled') OR meta ? 'sequence_hold');

-- The jobs waiting in a sequence, by id: the next to release is the first entry of its key.
CREATE INDEX IF NOT EXISTS oban_jobs_rust_sequence_waiting_index
  ON oban_jobs ((meta->>'sequence'), id) WHERE meta ? 'sequence' AND state = 'suspended';
