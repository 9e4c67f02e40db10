create table "attachments" ("id" serial primary key, "comment_id" integer not null, "url" varchar(255) not null, "created_at" timestamptz not null default CURRENT_TIMESTAMP, "updated_at" timestamptz not null default CURRENT_TIMESTAMP);
alter table "attachments" add constraint "attachments_comment_id_foreign" foreign key ("comment_id") references "comments" ("id") on delete CASCADE;
create index "attachments_comment_id_index" on "attachments" ("comment_id");
