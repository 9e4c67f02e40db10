BEGIN;

CREATE TABLE IF NOT EXISTS audit_log (
    id          BIGSERIAL PRIMARY KEY,
    user_id     INT REFERENCES users (id),
    project_id  INT REFERENCES projects (id) ON DELETE SET NULL,
    action      TEXT NOT NULL CHECK (action <> ''),
    at          TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX IF NOT EXISTS audit_log_user_id_idx ON audit_log (user_id);

COMMIT;
