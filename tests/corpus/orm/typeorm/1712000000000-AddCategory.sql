CREATE TABLE "category" ("id" SERIAL NOT NULL, "name" character varying NOT NULL, CONSTRAINT "PK_9c4e4a89e3674fc9f382d733f03" PRIMARY KEY ("id"));
ALTER TABLE "projects" ADD "categoryId" integer;
ALTER TABLE "projects" ADD CONSTRAINT "FK_1f6c3e2b9a4d7e8f0a1b2c3d4e5" FOREIGN KEY ("categoryId") REFERENCES "category"("id") ON DELETE NO ACTION ON UPDATE NO ACTION;
