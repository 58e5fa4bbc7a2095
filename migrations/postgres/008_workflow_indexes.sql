-- Workflows (oban-core/src/workflow/): the steps of a workflow are ordinary jobs whose meta names
-- their workflow (`workflow_id`), their own `name` and the names they depend on (`deps`). Two
-- partial indexes serve the release of waiting steps; jobs outside workflows take no entry in
-- either.
--
-- By workflow and step name: the state of each dependency, when a step is checked for release
-- (engines/postgres/workflow.rs), and a workflow's steps for its status.
CREATE INDEX IF NOT EXISTS oban_jobs_rust_workflow_name_index
  ON oban_jobs ((meta->>'workflow_id'), (meta->>'name')) WHERE meta ? 'workflow_id';

-- The suspended steps of a workflow: the candidates for release when one of its steps finishes.
-- A step takes an entry while it waits and none once released, so the index holds about as
-- many entries as there are waiting steps.
CREATE INDEX IF NOT EXISTS oban_jobs_rust_workflow_suspended_index
  ON oban_jobs ((meta->>'workflow_id')) WHERE state = 'suspended';
