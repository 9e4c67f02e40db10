ALTER TABLE users ADD COLUMN api_token UUID NOT NULL DEFAULT gen_random_uuid();
