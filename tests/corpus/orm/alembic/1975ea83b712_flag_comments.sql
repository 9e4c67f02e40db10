BEGIN;

-- Running upgrade ae1027a6acf -> 1975ea83b712

ALTER TABLE comments ADD COLUMN flagged BOOLEAN;

CREATE INDEX ix_comments_flagged ON comments (flagged);

UPDATE alembic_version SET version_num='1975ea83b712' WHERE alembic_version.version_num = 'ae1027a6acf';

COMMIT;

