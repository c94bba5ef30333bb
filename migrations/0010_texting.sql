-- Texting: the outbox a worker sends through Twilio (claims, retries, delivery status),
-- numbers that texted STOP, and each contact's language for the replies they get.

ALTER TABLE messages DROP CONSTRAINT IF EXISTS messages_status_check;
ALTER TABLE messages
    ADD CONSTRAINT messages_status_check
        CHECK (status IN ('queued', 'sending', 'sent', 'delivered', 'undelivered', 'failed', 'suppressed',
                          'received')),
    ADD COLUMN attempts           integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    -- When a queued text may next be tried, or when a claim of one `sending` lapses.
    ADD COLUMN next_attempt_at    timestamptz,
    ADD COLUMN error_code         integer,
    -- Why a text failed or was not sent (shown to the owner).
    ADD COLUMN error_message      text,
    ADD COLUMN delivered_at       timestamptz,
    ADD COLUMN status_changed_at  timestamptz NOT NULL DEFAULT now();

-- The worker's queue: outbound texts waiting or claimed, oldest due first.
CREATE INDEX messages_outbox_due_idx ON messages (coalesce(next_attempt_at, created_at))
    WHERE direction = 'outbound' AND status IN ('queued', 'sending');
-- Status callbacks find their text by Twilio's SID.
CREATE UNIQUE INDEX messages_twilio_sid_key ON messages (twilio_sid) WHERE twilio_sid IS NOT NULL;

-- A number that asked a tenant (STOP, or Twilio's 21610) to send it nothing more.
CREATE TABLE sms_opt_outs (
    client_id     bigint NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    phone         text NOT NULL,
    opted_out_at  timestamptz NOT NULL DEFAULT now(),
    source        text NOT NULL CHECK (source IN ('keyword', 'carrier')),
    PRIMARY KEY (client_id, phone)
);

ALTER TABLE sms_opt_outs ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON sms_opt_outs USING (client_id = current_client_id())
    WITH CHECK (client_id = current_client_id());
CREATE POLICY system_access ON sms_opt_outs TO ringlypro_app USING (current_client_id() IS NULL);
GRANT SELECT, INSERT, UPDATE, DELETE ON sms_opt_outs TO ringlypro_tenant, ringlypro_app;

ALTER TABLE contacts ADD COLUMN IF NOT EXISTS language text CHECK (language IN ('en','es'));
