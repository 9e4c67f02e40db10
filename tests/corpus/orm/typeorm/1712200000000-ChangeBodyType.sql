ALTER TABLE "comments" DROP COLUMN "body";
ALTER TABLE "comments" ADD "body" text NOT NULL;
