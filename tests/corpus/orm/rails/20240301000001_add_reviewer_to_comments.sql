-- == 20240301000001 AddReviewerToComments: migrating ============================
-- add_reference(:comments, :reviewer, foreign_key: {to_table: :users}, index: true)
ALTER TABLE "comments" ADD "reviewer_id" bigint;
CREATE INDEX "index_comments_on_reviewer_id" ON "comments" ("reviewer_id");
ALTER TABLE "comments" ADD CONSTRAINT "fk_rails_5d2f9f6c1a"
FOREIGN KEY ("reviewer_id")
  REFERENCES "users" ("id")
;
INSERT INTO "schema_migrations" ("version") VALUES ('20240301000001') RETURNING "version";
