BEGIN;
--
-- Alter field email on user
--
ALTER TABLE "users" ALTER COLUMN "email" TYPE varchar(254);
CREATE INDEX "users_email_8b1c2d3e_like" ON "users" ("email" varchar_pattern_ops);
COMMIT;
