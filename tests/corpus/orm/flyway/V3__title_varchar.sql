-- limit titles to 500 characters
ALTER TABLE projects ALTER COLUMN title TYPE VARCHAR(500);
