-- The languages a tenant's calls may be answered in (the default one among them), and
-- administrators' notes about a tenant. Notes are for RinglyPro's administrators only:
-- the tenant role gets no grant on them, so no owner's transaction can read one.

ALTER TABLE clients ADD COLUMN languages text[] NOT NULL DEFAULT ARRAY['en', 'es'];
ALTER TABLE clients ADD CONSTRAINT clients_languages_check CHECK (
    cardinality(languages) > 0
    AND languages <@ ARRAY['en', 'es']
    AND language = ANY (languages)
);

CREATE TABLE admin_notes (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    client_id   bigint NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    author_id   bigint REFERENCES users (id) ON DELETE SET NULL,
    body        text NOT NULL CHECK (length(trim(body)) > 0),
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX admin_notes_client_created_idx ON admin_notes (client_id, created_at DESC);
