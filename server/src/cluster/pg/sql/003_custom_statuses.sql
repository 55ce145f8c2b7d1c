-- v3: an account's custom statuses (a JSON array).
ALTER TABLE accounts ADD COLUMN custom_statuses JSONB NOT NULL DEFAULT '[]'::jsonb;
