ALTER TABLE "submissions" ADD CONSTRAINT "FK_7b2d1f0e9c8a6b5d4e3f2a1b0c9" FOREIGN KEY ("stage_id") REFERENCES "stages"("id") ON DELETE CASCADE ON UPDATE NO ACTION;
ALTER TABLE "submissions" ADD CONSTRAINT "FK_0a9b8c7d6e5f4a3b2c1d0e9f8a7" FOREIGN KEY ("user_id") REFERENCES "users"("id") ON DELETE NO ACTION ON UPDATE NO ACTION;
CREATE INDEX "IDX_submissions_stage_id" ON "submissions" ("stage_id");
