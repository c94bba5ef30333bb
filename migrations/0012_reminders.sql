-- Reminders and replies by text: each reminder sent once per appointment time (the unique
-- key is what makes several server instances agree), the caller's language on the
-- appointment and the contact, and when the caller confirmed by text.

ALTER TABLE contacts ADD COLUMN IF NOT EXISTS language text CHECK (language IN ('en','es'));

-- The caller's language; NULL reads as the contact's, then the business's.
ALTER TABLE appointments
    ADD COLUMN language text CHECK (language IN ('en', 'es')),
    ADD COLUMN caller_confirmed_at timestamptz,
    -- When starts_at was last set (booked or moved): a reminder due before then is never sent.
    ADD COLUMN time_set_at timestamptz NOT NULL DEFAULT now();

UPDATE appointments SET language = 'es' WHERE source = 'voice_booking_spanish';
UPDATE appointments SET time_set_at = created_at;

CREATE FUNCTION appointments_track_time_set() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.starts_at IS DISTINCT FROM OLD.starts_at THEN
        NEW.time_set_at := now();
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER appointments_time_set BEFORE UPDATE OF starts_at ON appointments
    FOR EACH ROW EXECUTE FUNCTION appointments_track_time_set();

-- One row per reminder sent, written in the transaction that queues its text.
CREATE TABLE appointment_reminders (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    client_id       bigint NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    appointment_id  bigint NOT NULL REFERENCES appointments (id) ON DELETE CASCADE,
    kind            text NOT NULL CHECK (kind IN ('reminder_24h', 'reminder_1h')),
    starts_at       timestamptz NOT NULL,
    message_id      bigint REFERENCES messages (id) ON DELETE SET NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT appointment_reminders_once UNIQUE (appointment_id, kind, starts_at)
);
CREATE INDEX appointment_reminders_client_idx ON appointment_reminders (client_id, created_at DESC);
CREATE INDEX appointments_confirmed_starts_idx ON appointments (starts_at) WHERE status = 'confirmed';

ALTER TABLE appointment_reminders ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON appointment_reminders USING (client_id = current_client_id())
    WITH CHECK (client_id = current_client_id());
CREATE POLICY system_access ON appointment_reminders TO ringlypro_app USING (current_client_id() IS NULL);
GRANT SELECT, INSERT ON appointment_reminders TO ringlypro_tenant;
GRANT SELECT, INSERT ON appointment_reminders TO ringlypro_app;
-- A sent reminder is history: the application never changes or removes one.
REVOKE UPDATE, DELETE ON appointment_reminders FROM ringlypro_app, ringlypro_tenant;
GRANT EXECUTE ON FUNCTION appointments_track_time_set() TO ringlypro_app, ringlypro_tenant;

-- Open times offered to a caller who texted RESCHEDULE: replying 1, 2 or 3 within a day
-- books that time instead. A new request replaces the caller's earlier offers.
CREATE TABLE reschedule_offers (
    client_id       bigint NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    appointment_id  bigint NOT NULL REFERENCES appointments (id) ON DELETE CASCADE,
    phone           text NOT NULL,
    choice          smallint NOT NULL CHECK (choice BETWEEN 1 AND 3),
    starts_at       timestamptz NOT NULL,
    ends_at         timestamptz NOT NULL,
    expires_at      timestamptz NOT NULL,
    PRIMARY KEY (client_id, phone, choice)
);

ALTER TABLE reschedule_offers ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON reschedule_offers USING (client_id = current_client_id())
    WITH CHECK (client_id = current_client_id());
CREATE POLICY system_access ON reschedule_offers TO ringlypro_app USING (current_client_id() IS NULL);
GRANT SELECT, INSERT, UPDATE, DELETE ON reschedule_offers TO ringlypro_tenant, ringlypro_app;
