alter table "projects" add constraint "projects_workspace_id_title_unique" unique ("workspace_id", "title");
