-- Which Twilio voice path a tenant's calls take: our own Media Streams pipeline, or
-- ConversationRelay (Twilio does speech recognition and synthesis, we exchange text).
ALTER TABLE clients
    ADD COLUMN voice_path text NOT NULL DEFAULT 'stream' CHECK (voice_path IN ('stream', 'relay'));
