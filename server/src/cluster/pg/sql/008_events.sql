-- v8: the account's events (status, availability, sessions, chat box views), each written in
-- the transaction of the change that caused it under the account's next `seq`. The counter
-- has a table of its own: raising it locks one small row per account, never the account's
-- row that account edits hold while they wait for agents.
CREATE TABLE event_seqs (
    account_id TEXT PRIMARY KEY,
    seq BIGINT NOT NULL
);
CREATE TABLE events (
    account_id TEXT NOT NULL,
    seq BIGINT NOT NULL,
    type TEXT NOT NULL,
    at BIGINT NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (account_id, seq)
);
CREATE INDEX events_at ON events (at);
