-- The owner's CRM pages: owners read their tenant's waiting emails through a tenant
-- transaction, so the outbox gets the same row-level security as the CRM tables; message
-- threads are read per contact, newest first.

ALTER TABLE email_outbox ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON email_outbox USING (client_id = current_client_id());
GRANT SELECT ON email_outbox TO ringlypro_tenant;

CREATE INDEX messages_client_contact_created_idx ON messages (client_id, contact_id, created_at DESC);
CREATE INDEX appointments_client_contact_idx ON appointments (client_id, contact_id);
