-- Credits: every answered call metered once, the monthly free minutes, prepaid balance
-- reloaded through Stripe (or confirmed by an administrator in local mode), the lock, and
-- the append-only ledger an accountant reads.

-- The balance may go below zero: the minutes of a call already under way when the balance
-- ran out, or a refund of credit already spent. It is never written off silently; the
-- account stays locked until a payment covers it.
ALTER TABLE credit_accounts DROP CONSTRAINT IF EXISTS credit_accounts_balance_cents_check;

ALTER TABLE credit_accounts
    ADD COLUMN low_balance_alerted_cycle date,
    ADD COLUMN auto_reload_enabled boolean NOT NULL DEFAULT false,
    ADD COLUMN auto_reload_amount_cents bigint NOT NULL DEFAULT 2000
        CHECK (auto_reload_amount_cents IN (1000, 2000, 5000, 10000)),
    ADD COLUMN auto_reload_threshold_cents bigint NOT NULL DEFAULT 500
        CHECK (auto_reload_threshold_cents BETWEEN 100 AND 10000),
    -- How many threshold crossings have been charged: part of each charge's idempotency key.
    ADD COLUMN auto_reload_attempts integer NOT NULL DEFAULT 0,
    -- Why the last automatic reload did not go through (shown to the owner until one does).
    ADD COLUMN auto_reload_problem text,
    ADD COLUMN stripe_customer_id text,
    ADD COLUMN stripe_payment_method_id text,
    ADD COLUMN card_saved_at timestamptz;

-- The free-minute cycle starts on the 1st in the tenant's own zone.
UPDATE credit_accounts ca
SET cycle_start = date_trunc('month', now() AT TIME ZONE c.timezone)::date
FROM clients c
WHERE c.id = ca.client_id;
ALTER TABLE credit_accounts ALTER COLUMN cycle_start DROP DEFAULT;

-- One row per call, written once when the call ends: what it cost or why it cost nothing.
ALTER TABLE usage_records
    ADD COLUMN call_sid text,
    ADD COLUMN duration_seconds integer NOT NULL DEFAULT 0 CHECK (duration_seconds >= 0),
    ADD COLUMN duration_source text NOT NULL DEFAULT 'twilio' CHECK (duration_source IN ('twilio', 'call')),
    ADD COLUMN rate_cents_per_minute integer NOT NULL DEFAULT 0,
    ADD COLUMN cycle_start date,
    ADD COLUMN not_charged text
        CHECK (not_charged IN ('owner_answered', 'too_short', 'blocked_caller', 'not_answered'));

-- Money in and out of the prepaid balance, other than calls. `reference` makes each one
-- happen once: a payment intent, one refunded total of a charge, an admin's form.
CREATE TABLE payment_transactions (
    id                      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    client_id               bigint NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    kind                    text NOT NULL
                            CHECK (kind IN ('reload', 'auto_reload', 'manual_reload', 'refund', 'adjustment',
                                            'failed')),
    amount_cents            bigint NOT NULL,
    balance_before_cents    bigint NOT NULL,
    balance_after_cents     bigint NOT NULL,
    reference               text NOT NULL,
    stripe_payment_intent   text,
    stripe_event_id         text,
    note                    text NOT NULL DEFAULT '',
    created_by              bigint REFERENCES users (id) ON DELETE SET NULL,
    created_at              timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT payment_transactions_reference_key UNIQUE (reference),
    CHECK (balance_after_cents = balance_before_cents + amount_cents)
);
CREATE INDEX payment_transactions_client_created_idx ON payment_transactions (client_id, created_at);

-- Each monthly reset of the free minutes, once per tenant and cycle.
CREATE TABLE credit_cycles (
    client_id           bigint NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    cycle_start         date NOT NULL,
    free_minutes_limit  integer NOT NULL,
    free_used_before    integer NOT NULL,
    created_at          timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (client_id, cycle_start)
);

-- A reload the owner asked for: a Stripe Checkout, an automatic charge of the saved card,
-- saving a card, or (without Stripe) a request an administrator confirms.
CREATE TABLE credit_reloads (
    id                       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    client_id                bigint NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    kind                     text NOT NULL CHECK (kind IN ('checkout', 'auto', 'manual', 'card_setup')),
    amount_cents             bigint NOT NULL CHECK (amount_cents >= 0),
    status                   text NOT NULL DEFAULT 'pending'
                             CHECK (status IN ('pending', 'paid', 'failed', 'cancelled')),
    idempotency_key          text NOT NULL,
    stripe_checkout_session  text,
    stripe_payment_intent    text,
    problem                  text,
    requested_by             bigint REFERENCES users (id) ON DELETE SET NULL,
    confirmed_by             bigint REFERENCES users (id) ON DELETE SET NULL,
    created_at               timestamptz NOT NULL DEFAULT now(),
    updated_at               timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT credit_reloads_idempotency_key UNIQUE (idempotency_key),
    CONSTRAINT credit_reloads_checkout_key UNIQUE (stripe_checkout_session),
    CONSTRAINT credit_reloads_payment_intent_key UNIQUE (stripe_payment_intent)
);
CREATE INDEX credit_reloads_client_created_idx ON credit_reloads (client_id, created_at DESC);

-- Callers a tenant never wants to hear from: rejected, never charged.
CREATE TABLE blocked_numbers (
    client_id   bigint NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    phone       text NOT NULL,
    note        text NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (client_id, phone)
);

-- Every Stripe event received, by id: a redelivery is recognised and changes nothing.
CREATE TABLE stripe_events (
    id           text PRIMARY KEY,
    type         text NOT NULL,
    client_id    bigint REFERENCES clients (id) ON DELETE SET NULL,
    created      timestamptz NOT NULL,
    received_at  timestamptz NOT NULL DEFAULT now(),
    outcome      text NOT NULL DEFAULT '',
    payload      jsonb NOT NULL
);

DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['payment_transactions', 'credit_cycles', 'credit_reloads', 'blocked_numbers']
    LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('CREATE POLICY tenant_isolation ON %I USING (client_id = current_client_id()) '
                       'WITH CHECK (client_id = current_client_id())', t);
        EXECUTE format('CREATE POLICY system_access ON %I TO ringlypro_app USING (current_client_id() IS NULL)', t);
        EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON %I TO ringlypro_tenant', t);
    END LOOP;
END
$$;

GRANT SELECT, INSERT, UPDATE, DELETE ON payment_transactions, credit_cycles, credit_reloads, blocked_numbers,
    stripe_events TO ringlypro_app;

-- The ledger is append-only for the application: rows are added, never changed or removed
-- (a tenant's deletion still cascades, as the tables' owner).
REVOKE UPDATE, DELETE ON usage_records, payment_transactions, credit_cycles FROM ringlypro_app, ringlypro_tenant;
