BEGIN;
--
-- Create constraint workspace_name_not_blank on model workspace
--
ALTER TABLE "workspaces" ADD CONSTRAINT "workspace_name_not_blank" CHECK (NOT ("name" = ''));
COMMIT;
