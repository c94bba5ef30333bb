-- Tenants, users and the CRM tables. Every tenant table carries client_id with
-- row-level security keyed on the per-transaction setting app.client_id.

CREATE EXTENSION IF NOT EXISTS btree_gist;

-- The role tenant-scoped transactions switch to (SET LOCAL ROLE). It cannot bypass
-- row-level security, so a query that forgets its WHERE client_id still sees one tenant.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'ringlypro_tenant') THEN
        CREATE ROLE ringlypro_tenant NOLOGIN NOBYPASSRLS;
    END IF;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
    NULL; -- another database of this cluster created it concurrently
END
$$;

DO $$
BEGIN
    EXECUTE format('GRANT ringlypro_tenant TO %I', current_user);
EXCEPTION WHEN others THEN
    NULL; -- superusers may already hold every role
END
$$;

CREATE FUNCTION current_client_id() RETURNS bigint
LANGUAGE sql STABLE AS $$
    SELECT NULLIF(current_setting('app.client_id', true), '')::bigint
$$;

CREATE TABLE users (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    email          text NOT NULL,
    password_hash  text NOT NULL,
    first_name     text NOT NULL DEFAULT '',
    last_name      text NOT NULL DEFAULT '',
    is_admin       boolean NOT NULL DEFAULT false,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX users_email_key ON users (lower(email));

CREATE TABLE clients (
    id                    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id               bigint REFERENCES users (id) ON DELETE SET NULL,
    business_name         text NOT NULL CHECK (length(trim(business_name)) > 0),
    business_phone        text,
    business_type         text,
    business_description  text NOT NULL DEFAULT '',
    services              text NOT NULL DEFAULT '',
    ringlypro_number      text NOT NULL,
    owner_name            text NOT NULL DEFAULT '',
    owner_phone           text NOT NULL,
    owner_email           text,
    custom_greeting       text,
    timezone              text NOT NULL DEFAULT 'America/New_York',
    business_days         text NOT NULL DEFAULT 'mon-fri',
    business_hours_start  time NOT NULL DEFAULT '09:00',
    business_hours_end    time NOT NULL DEFAULT '17:00',
    appointment_minutes   integer NOT NULL DEFAULT 30 CHECK (appointment_minutes BETWEEN 5 AND 480),
    buffer_minutes        integer NOT NULL DEFAULT 0 CHECK (buffer_minutes BETWEEN 0 AND 240),
    rachel_enabled        boolean NOT NULL DEFAULT true,
    language              text NOT NULL DEFAULT 'en' CHECK (language IN ('en', 'es')),
    forwarding_status     text NOT NULL DEFAULT 'pending',
    created_at            timestamptz NOT NULL DEFAULT now(),
    updated_at            timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT clients_ringlypro_number_key UNIQUE (ringlypro_number),
    CHECK (business_hours_end > business_hours_start)
);

CREATE TABLE contacts (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    client_id   bigint NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    name        text NOT NULL DEFAULT '',
    phone       text NOT NULL,
    email       text,
    notes       text NOT NULL DEFAULT '',
    source      text NOT NULL DEFAULT 'voice_call',
    last_contacted_at timestamptz,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT contacts_client_phone_key UNIQUE (client_id, phone)
);

CREATE TABLE calls (
    id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    client_id         bigint NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    contact_id        bigint REFERENCES contacts (id) ON DELETE SET NULL,
    call_sid          text NOT NULL,
    stream_sid        text,
    direction         text NOT NULL DEFAULT 'inbound',
    from_number       text NOT NULL DEFAULT '',
    to_number         text NOT NULL DEFAULT '',
    handled_by        text NOT NULL DEFAULT 'agent' CHECK (handled_by IN ('agent', 'owner', 'none')),
    status            text NOT NULL DEFAULT 'ringing',
    outcome           text NOT NULL DEFAULT 'none'
                      CHECK (outcome IN ('none', 'booked', 'cancelled', 'rescheduled', 'message', 'transfer', 'info')),
    language          text NOT NULL DEFAULT 'en',
    started_at        timestamptz NOT NULL DEFAULT now(),
    ended_at          timestamptz,
    duration_seconds  integer,
    cost_cents        bigint NOT NULL DEFAULT 0,
    failures          text NOT NULL DEFAULT '',
    created_at        timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT calls_call_sid_key UNIQUE (call_sid)
);
CREATE INDEX calls_client_started_idx ON calls (client_id, started_at DESC);

CREATE TABLE call_turns (
    id                    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    client_id             bigint NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    call_id               bigint NOT NULL REFERENCES calls (id) ON DELETE CASCADE,
    seq                   integer NOT NULL,
    speaker               text NOT NULL CHECK (speaker IN ('caller', 'agent', 'system')),
    text                  text NOT NULL,
    heard_text            text,
    interrupted           boolean NOT NULL DEFAULT false,
    intent                text,
    started_at            timestamptz NOT NULL,
    ended_at              timestamptz,
    -- latency figures of an agent turn
    caller_stopped_at     timestamptz,
    stt_final_at          timestamptz,
    reply_ready_at        timestamptz,
    tts_first_byte_at     timestamptz,
    first_audio_sent_at   timestamptz,
    first_mark_at         timestamptz,
    CONSTRAINT call_turns_call_seq_key UNIQUE (call_id, seq)
);
CREATE INDEX call_turns_client_call_idx ON call_turns (client_id, call_id, seq);

CREATE TABLE messages (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    client_id    bigint NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    contact_id   bigint REFERENCES contacts (id) ON DELETE SET NULL,
    call_id      bigint REFERENCES calls (id) ON DELETE SET NULL,
    direction    text NOT NULL CHECK (direction IN ('inbound', 'outbound')),
    kind         text NOT NULL DEFAULT 'sms',
    to_number    text NOT NULL,
    from_number  text NOT NULL,
    body         text NOT NULL,
    status       text NOT NULL DEFAULT 'queued'
                 CHECK (status IN ('queued', 'sent', 'delivered', 'failed', 'received')),
    twilio_sid   text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    sent_at      timestamptz
);
CREATE INDEX messages_client_created_idx ON messages (client_id, created_at DESC);

CREATE TABLE appointments (
    id                 bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    client_id          bigint NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    contact_id         bigint REFERENCES contacts (id) ON DELETE SET NULL,
    call_id            bigint REFERENCES calls (id) ON DELETE SET NULL,
    customer_name      text NOT NULL,
    customer_phone     text NOT NULL,
    starts_at          timestamptz NOT NULL,
    ends_at            timestamptz NOT NULL,
    status             text NOT NULL DEFAULT 'confirmed'
                       CHECK (status IN ('confirmed', 'pending', 'cancelled', 'completed', 'no_show')),
    source             text NOT NULL DEFAULT 'voice_booking'
                       CHECK (source IN ('voice_booking', 'voice_booking_spanish', 'online', 'manual', 'walk_in')),
    confirmation_code  text NOT NULL,
    notes              text NOT NULL DEFAULT '',
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT appointments_confirmation_code_key UNIQUE (confirmation_code),
    CONSTRAINT appointments_time_order CHECK (ends_at > starts_at),
    CONSTRAINT appointments_no_overlap EXCLUDE USING gist (
        client_id WITH =, tstzrange(starts_at, ends_at) WITH &&
    ) WHERE (status <> 'cancelled')
);
CREATE INDEX appointments_client_starts_idx ON appointments (client_id, starts_at);

CREATE TABLE credit_accounts (
    client_id               bigint PRIMARY KEY REFERENCES clients (id) ON DELETE CASCADE,
    balance_cents           bigint NOT NULL DEFAULT 0 CHECK (balance_cents >= 0),
    free_minutes_limit      integer NOT NULL DEFAULT 100,
    free_minutes_used       integer NOT NULL DEFAULT 0,
    cycle_start             date NOT NULL DEFAULT current_date,
    rate_cents_per_minute   integer NOT NULL DEFAULT 10 CHECK (rate_cents_per_minute >= 0),
    locked                  boolean NOT NULL DEFAULT false,
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE usage_records (
    id                   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    client_id            bigint NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    call_id              bigint REFERENCES calls (id) ON DELETE SET NULL,
    minutes              integer NOT NULL CHECK (minutes >= 0),
    free_minutes         integer NOT NULL CHECK (free_minutes >= 0),
    paid_minutes         integer NOT NULL CHECK (paid_minutes >= 0),
    cost_cents           bigint NOT NULL CHECK (cost_cents >= 0),
    balance_before_cents bigint NOT NULL,
    balance_after_cents  bigint NOT NULL,
    free_used_before     integer NOT NULL,
    free_used_after      integer NOT NULL,
    created_at           timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT usage_records_call_key UNIQUE (call_id)
);
CREATE INDEX usage_records_client_created_idx ON usage_records (client_id, created_at);

-- Row-level security applies to the tenant role (the tables' owner, which runs migrations
-- and resolves webhooks to their tenant, is not subject to it).
DO $$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['contacts', 'calls', 'call_turns', 'messages', 'appointments',
                             'credit_accounts', 'usage_records']
    LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('CREATE POLICY tenant_isolation ON %I USING (client_id = current_client_id()) '
                       'WITH CHECK (client_id = current_client_id())', t);
        EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON %I TO ringlypro_tenant', t);
    END LOOP;
END
$$;

ALTER TABLE clients ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON clients USING (id = current_client_id());
GRANT SELECT, UPDATE ON clients TO ringlypro_tenant;
GRANT SELECT ON users TO ringlypro_tenant;
GRANT EXECUTE ON FUNCTION current_client_id() TO ringlypro_tenant;
