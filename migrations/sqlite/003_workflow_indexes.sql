-- Workflows (oban-core/src/workflow/): see migrations/postgres/008_workflow_indexes.sql.
CREATE INDEX IF NOT EXISTS oban_jobs_rust_workflow_name_index
  ON oban_jobs (json_extract(meta, '$.workflow_id'), json_extract(meta, '$.name'))
  WHERE json_extract(meta, '$.workflow_id') IS NOT NULL;

CREATE INDEX IF NOT EXISTS oban_jobs_rust_workflow_suspended_index
  ON oban_jobs (json_extract(meta, '$.workflow_id')) WHERE state = 'suspended';
