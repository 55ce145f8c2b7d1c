-- v7: the availability log: every change of whether an agent counts for the chat box (or of
-- its status), written in the change's transaction; read by account or by agent over a time
-- range, pruned by age (each agent keeps its last row). `id` orders rows written in one
-- millisecond. The enums are stored as their codes (`history::query::code`). Agents of an
-- older database get their first row when a node starts.
CREATE TABLE availability_log (
    id BIGSERIAL PRIMARY KEY,
    account_id TEXT NOT NULL,
    agent_id TEXT NOT NULL,
    at BIGINT NOT NULL,
    availability SMALLINT NOT NULL,
    status SMALLINT NOT NULL,
    cause SMALLINT NOT NULL,
    ended SMALLINT
);
-- `id` in both: rows of one millisecond come back in the order they were written without
-- a sort.
CREATE INDEX availability_log_account_at ON availability_log (account_id, at, id);
CREATE INDEX availability_log_agent_at ON availability_log (agent_id, at, id);
