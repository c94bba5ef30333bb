-- Call recordings: a per-tenant switch (off by default: a recording needs the caller to be
-- told), and one Ogg Opus recording per call, both legs mixed, stored with the call.

ALTER TABLE clients ADD COLUMN recording_enabled boolean NOT NULL DEFAULT false;

-- Lets a recording name its call and tenant together, so it can never sit under a tenant
-- that does not own the call.
ALTER TABLE calls ADD CONSTRAINT calls_id_client_key UNIQUE (id, client_id);

CREATE TABLE call_recordings (
    call_id       bigint PRIMARY KEY,
    client_id     bigint NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    content_type  text NOT NULL DEFAULT 'audio/ogg',
    duration_ms   bigint NOT NULL CHECK (duration_ms >= 0),
    bytes         bytea NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT call_recordings_call_fkey FOREIGN KEY (call_id, client_id)
        REFERENCES calls (id, client_id) ON DELETE CASCADE
);

ALTER TABLE call_recordings ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON call_recordings USING (client_id = current_client_id())
    WITH CHECK (client_id = current_client_id());
GRANT SELECT, INSERT, UPDATE, DELETE ON call_recordings TO ringlypro_tenant;
