-- v5: an agent's live sessions by agent (a login replaces the same agent's session on its
-- device; /v1/me lists them), without scanning the account's.
CREATE INDEX sessions_agent_live ON sessions (agent_id) WHERE ended_at IS NULL;
