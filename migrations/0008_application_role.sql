-- The role the application's connections run as: not the tables' owner, not a superuser,
-- and subject to row-level security. Outside a tenant transaction (no app.client_id set) it
-- may read and write every tenant's rows, which the system paths need (a webhook finding
-- the tenant by its number, signup, the call's save); once a transaction names a tenant,
-- even this role sees only that tenant. Tenant transactions also switch to
-- ringlypro_tenant. A table with row-level security added later needs its own
-- system_access policy like the ones below.

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'ringlypro_app') THEN
        CREATE ROLE ringlypro_app NOLOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE;
    END IF;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
    NULL; -- another database of this cluster created it concurrently
END
$$;

DO $$
BEGIN
    GRANT ringlypro_tenant TO ringlypro_app;
EXCEPTION WHEN others THEN
    NULL; -- granted already by another database of this cluster
END
$$;

DO $$
BEGIN
    EXECUTE format('GRANT ringlypro_app TO %I', current_user);
EXCEPTION WHEN others THEN
    NULL; -- superusers may already hold every role
END
$$;

GRANT USAGE ON SCHEMA public TO ringlypro_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO ringlypro_app;
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO ringlypro_app;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA public TO ringlypro_app;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO ringlypro_app;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO ringlypro_app;

DO $$
DECLARE
    t text;
BEGIN
    FOR t IN
        SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = 'public' AND c.relkind = 'r' AND c.relrowsecurity
    LOOP
        EXECUTE format('CREATE POLICY system_access ON %I TO ringlypro_app USING (current_client_id() IS NULL)', t);
    END LOOP;
END
$$;
