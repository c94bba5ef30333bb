-- Outbound webhooks: a business's own endpoints, each subscribed to some events, and one
-- delivery row per (endpoint, event), written in the same transaction as the change it
-- tells of, so nothing is lost or told twice. A worker on any instance claims due
-- deliveries with a lease; the body is stored as sent, so a retry or a resend carries the
-- same bytes and the same event id.
CREATE TABLE webhook_endpoints (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    client_id    bigint NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    url          text NOT NULL,
    -- The signing secret, shown to the owner (it is shared with the receiver).
    secret       text NOT NULL,
    events       text[] NOT NULL CHECK (cardinality(events) > 0),
    description  text NOT NULL DEFAULT '',
    created_at   timestamptz NOT NULL DEFAULT now(),
    removed_at   timestamptz
);
CREATE INDEX webhook_endpoints_client_idx ON webhook_endpoints (client_id) WHERE removed_at IS NULL;

CREATE TABLE webhook_deliveries (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    client_id        bigint NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    endpoint_id      bigint NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    event_id         text NOT NULL,
    event_type       text NOT NULL,
    body             text NOT NULL,
    status           text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts         integer NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    -- Retries stop after this (a day after the event, or after a resend).
    give_up_at       timestamptz NOT NULL DEFAULT now() + interval '1 day',
    lease_until      timestamptz,
    last_status      integer,
    last_error       text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    delivered_at     timestamptz,
    CONSTRAINT webhook_deliveries_once UNIQUE (endpoint_id, event_id)
);
CREATE INDEX webhook_deliveries_due_idx ON webhook_deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_client_idx ON webhook_deliveries (client_id, created_at DESC);

DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['webhook_endpoints', 'webhook_deliveries']
    LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('CREATE POLICY tenant_isolation ON %I USING (client_id = current_client_id()) '
                       'WITH CHECK (client_id = current_client_id())', t);
        EXECUTE format('CREATE POLICY system_access ON %I TO ringlypro_app USING (current_client_id() IS NULL)', t);
        EXECUTE format('GRANT SELECT, INSERT, UPDATE ON %I TO ringlypro_tenant, ringlypro_app', t);
    END LOOP;
END
$$;
