-- v1: the first schema of the cluster backend's PostgreSQL database.
CREATE TABLE accounts (
    id TEXT PRIMARY KEY,
    slug TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    widget_key TEXT NOT NULL UNIQUE,
    settings JSONB NOT NULL,
    opening_hours JSONB NOT NULL,
    groups_json JSONB NOT NULL,
    view_reserved BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE TABLE agents (
    id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES accounts(id),
    name TEXT NOT NULL,
    email TEXT NOT NULL,
    email_key TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    role TEXT NOT NULL,
    groups_json JSONB NOT NULL,
    status JSONB NOT NULL,
    status_op TEXT NOT NULL,
    status_seq BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (account_id, email_key)
);
CREATE INDEX agents_updated ON agents (updated_at);
CREATE TABLE sessions (
    id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL,
    agent_id TEXT NOT NULL,
    token_hash BYTEA NOT NULL UNIQUE,
    device JSONB NOT NULL,
    push JSONB,
    mode TEXT NOT NULL,
    lease_until BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    ended_at BIGINT,
    end_reason TEXT
);
CREATE INDEX sessions_live ON sessions (account_id) WHERE ended_at IS NULL;
CREATE INDEX sessions_ended ON sessions (ended_at) WHERE ended_at IS NOT NULL;
CREATE TABLE status_ops (
    agent_id TEXT NOT NULL,
    op_id TEXT NOT NULL,
    response JSONB NOT NULL,
    at BIGINT NOT NULL,
    PRIMARY KEY (agent_id, op_id)
);
CREATE INDEX status_ops_at ON status_ops (at);
