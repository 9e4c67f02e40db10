-- Flyway migration: tags for projects
CREATE TABLE tags (
    id            BIGSERIAL PRIMARY KEY,
    workspace_id  INT          NOT NULL REFERENCES workspaces (id),
    name          VARCHAR(100) NOT NULL,
    UNIQUE (workspace_id, name)
);

CREATE TABLE project_tags (
    project_id  INT    NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    tag_id      BIGINT NOT NULL REFERENCES tags (id) ON DELETE CASCADE,
    PRIMARY KEY (project_id, tag_id)
);

CREATE INDEX project_tags_tag_id_idx ON project_tags (tag_id);
