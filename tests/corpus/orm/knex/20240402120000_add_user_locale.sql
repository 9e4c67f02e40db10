alter table "users" add column "locale" varchar(255) default 'en';
