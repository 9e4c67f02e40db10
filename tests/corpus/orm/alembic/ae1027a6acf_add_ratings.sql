BEGIN;

CREATE TABLE alembic_version (
    version_num VARCHAR(32) NOT NULL, 
    CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num)
);

-- Running upgrade  -> ae1027a6acf

CREATE TABLE ratings (
    id SERIAL NOT NULL, 
    submission_id INTEGER NOT NULL, 
    stars SMALLINT NOT NULL, 
    PRIMARY KEY (id), 
    CHECK (stars BETWEEN 1 AND 5), 
    FOREIGN KEY(submission_id) REFERENCES submissions (id) ON DELETE CASCADE
);

CREATE INDEX ix_ratings_submission_id ON ratings (submission_id);

INSERT INTO alembic_version (version_num) VALUES ('ae1027a6acf') RETURNING alembic_version.version_num;

COMMIT;

