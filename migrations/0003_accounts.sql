-- Owners' accounts: the pool of RinglyPro numbers handed out at signup, server-side
-- sessions, password reset tokens, failed logins (per-account rate limit) and the email
-- outbox. None of these belong to one tenant's CRM, so none is under row-level security;
-- only the application's own role reads them.

-- A tenant may sign up before a number is free; it then waits with no number.
ALTER TABLE clients ALTER COLUMN ringlypro_number DROP NOT NULL;

CREATE TABLE ringlypro_numbers (
    number       text PRIMARY KEY CHECK (number ~ '^\+[1-9][0-9]{7,14}$'),
    client_id    bigint REFERENCES clients (id) ON DELETE SET NULL,
    added_at     timestamptz NOT NULL DEFAULT now(),
    assigned_at  timestamptz,
    CONSTRAINT ringlypro_numbers_client_key UNIQUE (client_id)
);
-- Free numbers, oldest first: what signup takes from.
CREATE INDEX ringlypro_numbers_free_idx ON ringlypro_numbers (added_at, number) WHERE client_id IS NULL;

CREATE TABLE sessions (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- SHA-256 of the token in the cookie; the token itself is never stored.
    token_hash    bytea NOT NULL,
    user_id       bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    csrf_token    text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz NOT NULL,
    CONSTRAINT sessions_token_hash_key UNIQUE (token_hash)
);
CREATE INDEX sessions_user_idx ON sessions (user_id);

CREATE TABLE password_reset_tokens (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    token_hash  bytea NOT NULL,
    user_id     bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    used_at     timestamptz,
    CONSTRAINT password_reset_tokens_token_hash_key UNIQUE (token_hash)
);

CREATE TABLE login_failures (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    email      text NOT NULL,
    failed_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX login_failures_email_idx ON login_failures (lower(email), failed_at);

-- Emails wait here; with no email provider configured they are only shown, never lost.
CREATE TABLE email_outbox (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    client_id   bigint REFERENCES clients (id) ON DELETE SET NULL,
    to_address  text NOT NULL,
    kind        text NOT NULL,
    subject     text NOT NULL,
    body        text NOT NULL,
    status      text NOT NULL DEFAULT 'queued' CHECK (status IN ('queued', 'sent', 'failed')),
    created_at  timestamptz NOT NULL DEFAULT now(),
    sent_at     timestamptz
);
CREATE INDEX email_outbox_created_idx ON email_outbox (created_at DESC);
