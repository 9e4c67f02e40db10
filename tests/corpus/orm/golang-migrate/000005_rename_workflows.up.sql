ALTER TABLE workflows RENAME TO pipelines;
CREATE INDEX pipelines_project_id_idx ON pipelines (project_id);
