-- v2: timed statuses. The end of an agent's timed status, from its status, indexed so the
-- reconciler finds the ends no node applied (a node lost between the sweep and the change).
ALTER TABLE agents
    ADD COLUMN status_until BIGINT GENERATED ALWAYS AS ((status->>'until')::bigint) STORED;
CREATE INDEX agents_status_until ON agents (status_until) WHERE status_until IS NOT NULL;
