alter table "comments" alter column "body" drop not null;
alter table "comments" alter column "body" set default '';
