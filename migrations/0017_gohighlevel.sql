-- GoHighLevel (LeadConnector) per business: one installed location, its tokens sealed
-- with INTEGRATIONS_KEY (the refresh token rotates on every use and is replaced in the
-- same transaction that used it), the calendar bookings go to, and what each of our
-- contacts and appointments is called there.
CREATE TABLE ghl_connections (
    client_id              bigint PRIMARY KEY REFERENCES clients (id) ON DELETE CASCADE,
    location_id            text NOT NULL,
    company_id             text,
    -- Where bookings go; NULL while the location has no calendar (changes wait).
    calendar_id            text,
    calendar_name          text,
    -- The location's calendars as of the last connect, to choose from: [{id, name}].
    calendars              jsonb NOT NULL DEFAULT '[]',
    status                 text NOT NULL DEFAULT 'connected' CHECK (status IN ('connected', 'reconnect')),
    refresh_token_sealed   text NOT NULL,
    access_token_sealed    text,
    access_expires_at      timestamptz,
    refreshed_at           timestamptz,
    last_sent_at           timestamptz,
    last_error             text,
    connected_at           timestamptz NOT NULL DEFAULT now()
);

-- Our contact (by phone) and appointment ids → GoHighLevel's, written as soon as
-- GoHighLevel answers so a retry updates instead of creating again.
CREATE TABLE ghl_links (
    client_id   bigint NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    kind        text NOT NULL CHECK (kind IN ('contact', 'appointment')),
    local_key   text NOT NULL,
    remote_id   text NOT NULL,
    PRIMARY KEY (client_id, kind, local_key)
);

-- The sync queue serves both calendars now: each row says which, and is about an
-- appointment or (GoHighLevel only) a contact.
ALTER TABLE calendar_sync_jobs
    ADD COLUMN target text NOT NULL DEFAULT 'google' CHECK (target IN ('google', 'gohighlevel')),
    ADD COLUMN contact_id bigint,
    ALTER COLUMN appointment_id DROP NOT NULL,
    ADD CONSTRAINT calendar_sync_jobs_subject CHECK ((appointment_id IS NULL) <> (contact_id IS NULL));
CREATE INDEX calendar_sync_jobs_target_due_idx ON calendar_sync_jobs (target, next_attempt_at);

-- Consents in progress, for either vendor.
ALTER TABLE google_oauth_states RENAME TO oauth_states;
ALTER TABLE oauth_states ADD COLUMN vendor text NOT NULL DEFAULT 'google' CHECK (vendor IN ('google', 'gohighlevel'));

DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['ghl_connections', 'ghl_links']
    LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('CREATE POLICY tenant_isolation ON %I USING (client_id = current_client_id()) '
                       'WITH CHECK (client_id = current_client_id())', t);
        EXECUTE format('CREATE POLICY system_access ON %I TO ringlypro_app USING (current_client_id() IS NULL)', t);
        EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON %I TO ringlypro_tenant, ringlypro_app', t);
    END LOOP;
END
$$;
