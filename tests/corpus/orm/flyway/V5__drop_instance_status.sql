ALTER TABLE workflow_instances DROP COLUMN status;
