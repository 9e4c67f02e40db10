-- == 20240307000000 AddLastSeenAtToUsers: migrating ==============================
-- add_column(:users, :last_seen_at, :datetime, default: -> { "CURRENT_TIMESTAMP" })
ALTER TABLE "users" ADD "last_seen_at" timestamp(6) DEFAULT CURRENT_TIMESTAMP;
INSERT INTO "schema_migrations" ("version") VALUES ('20240307000000') RETURNING "version";
