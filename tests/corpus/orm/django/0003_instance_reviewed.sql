BEGIN;
--
-- Add field reviewed to workflowinstance
--
ALTER TABLE "workflow_instances" ADD COLUMN "reviewed" boolean DEFAULT false NOT NULL;
ALTER TABLE "workflow_instances" ALTER COLUMN "reviewed" DROP DEFAULT;
COMMIT;
