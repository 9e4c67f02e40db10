-- == 20240309000000 IndexSubmissionsOnUserAndStage: migrating ===================
-- disable_ddl_transaction!
-- add_index(:submissions, [:user_id, :stage_id], algorithm: :concurrently)
CREATE INDEX CONCURRENTLY "index_submissions_on_user_id_and_stage_id" ON "submissions" ("user_id", "stage_id");
INSERT INTO "schema_migrations" ("version") VALUES ('20240309000000') RETURNING "version";
