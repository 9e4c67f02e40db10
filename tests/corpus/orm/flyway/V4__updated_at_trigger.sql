ALTER TABLE workflows ADD COLUMN updated_at TIMESTAMPTZ;

CREATE OR REPLACE FUNCTION touch_updated_at() RETURNS trigger AS $$
BEGIN
    -- keep updated_at current; a ';' in a comment does not end anything
    NEW.updated_at := now();
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER workflows_touch_updated_at
    BEFORE UPDATE ON workflows
    FOR EACH ROW EXECUTE FUNCTION touch_updated_at();
