-- v9: webhook endpoints, each with the cursor into its account's events it is done with and
-- the lease of the node sending to it, and their deliveries. No foreign keys: an endpoint
-- row is locked by the worker that claims it (`FOR UPDATE SKIP LOCKED`), never together
-- with the account's rows.
CREATE TABLE webhooks (
    id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL,
    url TEXT NOT NULL,
    events TEXT NOT NULL,
    description TEXT,
    enabled BOOLEAN NOT NULL,
    disabled_reason TEXT,
    secret TEXT NOT NULL,
    previous_secret TEXT,
    previous_until BIGINT,
    created_at BIGINT NOT NULL,
    cursor BIGINT NOT NULL,
    due_at BIGINT,
    lease_owner TEXT,
    lease_until BIGINT
);
CREATE INDEX webhooks_account ON webhooks (account_id);
CREATE TABLE webhook_deliveries (
    webhook_id TEXT NOT NULL,
    seq BIGINT NOT NULL,
    type TEXT NOT NULL,
    at BIGINT NOT NULL,
    state SMALLINT NOT NULL,
    attempts INTEGER NOT NULL,
    since BIGINT NOT NULL,
    last_at BIGINT,
    last_status INTEGER,
    last_error TEXT,
    next_at BIGINT,
    PRIMARY KEY (webhook_id, seq)
);
CREATE INDEX webhook_deliveries_at ON webhook_deliveries (at);
