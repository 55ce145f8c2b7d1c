-- v7: the availability log: every change of whether an agent counts for the chat box (or of
-- its status), written in the change's transaction; read by account or by agent over a time
-- range, pruned by age (each agent keeps its last row). `id` orders rows written in one
-- millisecond. Agents of an older database get their first row when a node starts.
CREATE TABLE availability_log (
    id BIGSERIAL PRIMARY KEY,
    account_id TEXT NOT NULL,
    agent_id TEXT NOT NULL,
    at BIGINT NOT NULL,
    availability TEXT NOT NULL,
    status TEXT NOT NULL,
    cause TEXT NOT NULL,
    ended TEXT
);
CREATE INDEX availability_log_account_at ON availability_log (account_id, at);
CREATE INDEX availability_log_agent_at ON availability_log (agent_id, at);
