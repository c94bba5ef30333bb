-- Buying and releasing tenants' numbers through Twilio. Each tenant has at most one order
-- in flight; a worker on any instance claims it with a lease, so a number is bought once.
CREATE TABLE number_orders (
    client_id        bigint PRIMARY KEY REFERENCES clients (id) ON DELETE CASCADE,
    action           text NOT NULL DEFAULT 'buy' CHECK (action IN ('buy', 'release')),
    status           text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'working', 'done', 'failed')),
    -- Where to look for a local number: the business phone's area code.
    area_code        text,
    attempts         integer NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    lease_until      timestamptz,
    last_error       text,
    number           text,
    number_sid       text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX number_orders_due_idx ON number_orders (next_attempt_at) WHERE status IN ('pending', 'working');

ALTER TABLE number_orders ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON number_orders USING (client_id = current_client_id())
    WITH CHECK (client_id = current_client_id());
CREATE POLICY system_access ON number_orders TO ringlypro_app USING (current_client_id() IS NULL);
GRANT SELECT ON number_orders TO ringlypro_tenant;
GRANT SELECT, INSERT, UPDATE, DELETE ON number_orders TO ringlypro_app;

-- The Twilio SID of a number we bought, so it can be released.
ALTER TABLE ringlypro_numbers ADD COLUMN twilio_sid text;
-- A closed account: its number is released and its calls are no longer answered.
ALTER TABLE clients ADD COLUMN closed_at timestamptz;
