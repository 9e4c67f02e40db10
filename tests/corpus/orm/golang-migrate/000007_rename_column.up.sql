ALTER TABLE config_versions RENAME COLUMN body TO content;
CREATE INDEX config_versions_content_idx ON config_versions (content);
