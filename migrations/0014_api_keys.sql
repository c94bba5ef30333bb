-- Keys for the JSON API, so integrations need no browser session. Only the SHA-256 of a
-- key is kept; the key itself is shown once, when it is made. A key acts for its tenant
-- only, and a revoked key is kept (revoked_at) so the list says when it stopped working.
CREATE TABLE api_keys (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    client_id     bigint NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    created_by    bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name          text NOT NULL CHECK (length(name) BETWEEN 1 AND 80),
    -- The key's first characters, shown in the list so the owner can tell keys apart.
    prefix        text NOT NULL,
    key_hash      bytea NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    last_used_at  timestamptz,
    revoked_at    timestamptz,
    CONSTRAINT api_keys_key_hash_key UNIQUE (key_hash)
);
CREATE INDEX api_keys_client_idx ON api_keys (client_id, created_at);

ALTER TABLE api_keys ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON api_keys USING (client_id = current_client_id())
    WITH CHECK (client_id = current_client_id());
CREATE POLICY system_access ON api_keys TO ringlypro_app USING (current_client_id() IS NULL);
GRANT SELECT, INSERT, UPDATE ON api_keys TO ringlypro_tenant;
GRANT SELECT, INSERT, UPDATE ON api_keys TO ringlypro_app;
