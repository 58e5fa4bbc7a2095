-- Sequences (oban-core/src/sequence.rs): see migrations/postgres/010_sequences.sql.
CREATE INDEX IF NOT EXISTS oban_jobs_rust_sequence_active_index
  ON oban_jobs (json_extract(meta, '$.sequence'))
  WHERE json_extract(meta, '$.sequence') IS NOT NULL AND state NOT IN ('completed', 'suspended')
    AND (state NOT IN ('discarded', 'cancelled') OR json_extract(meta, '$.sequence_hold') IS NOT NULL);

CREATE INDEX IF NOT EXISTS oban_jobs_rust_sequence_waiting_index
  ON oban_jobs (json_extract(meta, '$.sequence'), id)
  WHERE json_extract(meta, '$.sequence') IS NOT NULL AND state = 'suspended';
