BEGIN;

-- Running upgrade 1975ea83b712 -> 3c4d5e6f7a8b

ALTER TABLE workflow_instances ALTER COLUMN started_by SET NOT NULL;

ALTER TABLE workflow_instances ADD CONSTRAINT fk_workflow_instances_started_by_users FOREIGN KEY(started_by) REFERENCES users (id);

COMMIT;

