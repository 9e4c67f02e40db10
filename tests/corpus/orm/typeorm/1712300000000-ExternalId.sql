CREATE EXTENSION IF NOT EXISTS "uuid-ossp";
ALTER TABLE "workspaces" ADD "externalId" uuid NOT NULL DEFAULT uuid_generate_v4();
