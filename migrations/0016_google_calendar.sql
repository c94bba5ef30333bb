-- Google Calendar, both ways. A business connects one calendar (tokens sealed with
-- INTEGRATIONS_KEY); its busy times are copied into google_busy by push-triggered
-- incremental syncs; every appointment change queues one calendar_sync_jobs row in the
-- transaction that makes it, and a worker on any instance brings the Google event in line.
CREATE TABLE google_connections (
    client_id              bigint PRIMARY KEY REFERENCES clients (id) ON DELETE CASCADE,
    calendar_id            text NOT NULL DEFAULT 'primary',
    status                 text NOT NULL DEFAULT 'connected' CHECK (status IN ('connected', 'reconnect')),
    refresh_token_sealed   text NOT NULL,
    access_token_sealed    text,
    access_expires_at      timestamptz,
    -- Incremental sync: the token of the last complete listing; NULL means a full sync.
    sync_token             text,
    -- A push notification (or a change of ours) asked for a sync the worker has not run.
    sync_due               boolean NOT NULL DEFAULT true,
    sync_lease_until       timestamptz,
    channel_id             text UNIQUE,
    channel_token          text,
    resource_id            text,
    channel_expires_at     timestamptz,
    last_synced_at         timestamptz,
    last_error             text,
    connected_at           timestamptz NOT NULL DEFAULT now()
);

-- The owner's own busy intervals (never our events), replaced by each sync.
CREATE TABLE google_busy (
    client_id   bigint NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    event_id    text NOT NULL,
    summary     text NOT NULL DEFAULT '',
    starts_at   timestamptz NOT NULL,
    ends_at     timestamptz NOT NULL CHECK (ends_at > starts_at),
    PRIMARY KEY (client_id, event_id)
);
CREATE INDEX google_busy_time_idx ON google_busy (client_id, starts_at);

-- One row per appointment waiting to reach Google; a newer change to the same appointment
-- bumps `version`, so a worker that finished an older one leaves the row for the next run.
CREATE TABLE calendar_sync_jobs (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    client_id        bigint NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    appointment_id   bigint NOT NULL,
    action           text NOT NULL CHECK (action IN ('upsert', 'delete')),
    unique_key       text NOT NULL,
    version          integer NOT NULL DEFAULT 1,
    attempts         integer NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    lease_until      timestamptz,
    last_error       text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT calendar_sync_jobs_once UNIQUE (unique_key)
);
CREATE INDEX calendar_sync_jobs_due_idx ON calendar_sync_jobs (next_attempt_at);

-- The `state` of a consent in progress, bound to the session that started it.
CREATE TABLE google_oauth_states (
    state        text PRIMARY KEY,
    client_id    bigint NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    session_csrf text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now()
);

DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['google_connections', 'google_busy', 'calendar_sync_jobs', 'google_oauth_states']
    LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('CREATE POLICY tenant_isolation ON %I USING (client_id = current_client_id()) '
                       'WITH CHECK (client_id = current_client_id())', t);
        EXECUTE format('CREATE POLICY system_access ON %I TO ringlypro_app USING (current_client_id() IS NULL)', t);
        EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON %I TO ringlypro_tenant, ringlypro_app', t);
    END LOOP;
END
$$;
