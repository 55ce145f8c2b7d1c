-- v4: the status log: every applied status change (its StatusView), written in the change's
-- transaction; read newest first per agent, pruned by age through its time index.
CREATE TABLE status_log (
    agent_id TEXT NOT NULL,
    version BIGINT NOT NULL,
    applied_at BIGINT NOT NULL,
    status JSONB NOT NULL,
    PRIMARY KEY (agent_id, version)
);
CREATE INDEX status_log_applied_at ON status_log (applied_at);
