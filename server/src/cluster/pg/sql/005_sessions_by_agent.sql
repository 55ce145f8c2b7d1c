-- v5: an agent's sessions by agent: a login replaces the same agent's live session on its
-- device, /v1/me lists the live ones, and a device the agent used before keeps its own
-- login window (all without scanning the account's sessions).
CREATE INDEX sessions_by_agent ON sessions (agent_id);
