ALTER TABLE projects ADD COLUMN archived BOOLEAN NOT NULL DEFAULT FALSE;

CREATE INDEX idx_projects_live ON projects (workspace_id) WHERE archived = FALSE;
