-- v6: the customer's identity: an account's sign-in settings and API keys (one JSON object),
-- and the customer's user id an agent is linked to (unique in its account).
ALTER TABLE accounts ADD COLUMN identity JSONB NOT NULL DEFAULT '{}'::jsonb;
ALTER TABLE agents ADD COLUMN sub TEXT;
CREATE UNIQUE INDEX agents_sub ON agents (account_id, sub) WHERE sub IS NOT NULL;
