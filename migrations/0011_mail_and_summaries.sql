-- E-mail goes out through SMTP from the outbox; the owner gets a summary of each call (or a
-- daily digest); a caller who hung up before anything was settled gets one text back.

-- The outbox becomes a queue: a worker claims due rows (`sending`, with a lease so a
-- crashed instance's claim runs out), retries transient failures later, and records why.
ALTER TABLE email_outbox DROP CONSTRAINT IF EXISTS email_outbox_status_check;
ALTER TABLE email_outbox
    ADD CONSTRAINT email_outbox_status_check CHECK (status IN ('queued', 'sending', 'sent', 'failed')),
    ADD COLUMN attempts integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    ADD COLUMN next_attempt_at timestamptz NOT NULL DEFAULT now(),
    ADD COLUMN lease_until timestamptz,
    ADD COLUMN last_error text;
CREATE INDEX email_outbox_due_idx ON email_outbox (next_attempt_at) WHERE status IN ('queued', 'sending');

-- The owner's choice of summaries: by text, e-mail, both or none; after every call, only
-- after bookings and messages, or one digest a day at an hour of the tenant's zone.
ALTER TABLE clients
    ADD COLUMN summary_channel text NOT NULL DEFAULT 'email'
        CHECK (summary_channel IN ('text', 'email', 'both', 'none')),
    ADD COLUMN summary_scope text NOT NULL DEFAULT 'every_call'
        CHECK (summary_scope IN ('every_call', 'bookings_and_messages', 'daily_digest')),
    ADD COLUMN summary_digest_hour smallint NOT NULL DEFAULT 18 CHECK (summary_digest_hour BETWEEN 0 AND 23),
    ADD COLUMN summary_email text,
    ADD COLUMN summary_language text NOT NULL DEFAULT 'en' CHECK (summary_language IN ('en', 'es'));

-- One row per ended call: written in the same transaction as the summary it queued (or the
-- reason none was), so each call is summarised once whatever the number of instances.
CREATE TABLE call_summaries (
    call_id     bigint PRIMARY KEY REFERENCES calls (id) ON DELETE CASCADE,
    client_id   bigint NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    outcome     text NOT NULL
                CHECK (outcome IN ('sent', 'skipped_by_preference', 'in_digest', 'not_answered', 'blocked_caller',
                                   'before_summaries')),
    summary     text NOT NULL DEFAULT '',
    source      text NOT NULL DEFAULT 'rules' CHECK (source IN ('rules', 'model')),
    -- For a call kept for the daily digest: the day of the digest that listed it.
    digest_day  date,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX call_summaries_client_created_idx ON call_summaries (client_id, created_at);
-- The summaries worker looks only at calls ended in the last week.
CREATE INDEX calls_ended_idx ON calls (ended_at) WHERE ended_at IS NOT NULL;

-- Calls that ended before summaries existed are not summarised now.
INSERT INTO call_summaries (call_id, client_id, outcome)
SELECT id, client_id, 'before_summaries' FROM calls WHERE ended_at IS NOT NULL;

-- One digest per tenant and local day.
CREATE TABLE summary_digests (
    client_id   bigint NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    day         date NOT NULL,
    calls       integer NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (client_id, day)
);

-- "Sorry we missed you": at most one text per tenant, caller number and local day.
CREATE TABLE missed_call_texts (
    client_id   bigint NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    phone       text NOT NULL,
    day         date NOT NULL,
    call_id     bigint REFERENCES calls (id) ON DELETE SET NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (client_id, phone, day)
);

DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['call_summaries', 'summary_digests', 'missed_call_texts']
    LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('CREATE POLICY tenant_isolation ON %I USING (client_id = current_client_id()) '
                       'WITH CHECK (client_id = current_client_id())', t);
        EXECUTE format('CREATE POLICY system_access ON %I TO ringlypro_app USING (current_client_id() IS NULL)', t);
        EXECUTE format('GRANT SELECT ON %I TO ringlypro_tenant', t);
    END LOOP;
END
$$;

GRANT SELECT, INSERT, UPDATE, DELETE ON call_summaries, summary_digests, missed_call_texts TO ringlypro_app;
