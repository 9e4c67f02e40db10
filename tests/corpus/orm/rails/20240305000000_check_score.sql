-- == 20240305000000 AddScoreCheck: migrating ===================================
-- add_check_constraint(:submissions, "score >= 0", name: "submissions_score_nonnegative", validate: false)
ALTER TABLE "submissions" ADD CONSTRAINT submissions_score_nonnegative CHECK (score >= 0) NOT VALID;
-- validate_check_constraint(:submissions, name: "submissions_score_nonnegative")
ALTER TABLE "submissions" VALIDATE CONSTRAINT "submissions_score_nonnegative";
INSERT INTO "schema_migrations" ("version") VALUES ('20240305000000') RETURNING "version";
