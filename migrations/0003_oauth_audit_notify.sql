-- Issue 6: the audit log, OAuth connect state, the workspace a credential belongs to, and the
-- change notifications every replica listens to.

-- Who did what to which tenant, and when. Append-only; never holds a token. `tenant_id` has no
-- foreign key on purpose: the trail of a deleted tenant must outlive it.
CREATE TABLE audit_log (
    id          BIGSERIAL PRIMARY KEY,
    at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    actor       TEXT NOT NULL,
    action      TEXT NOT NULL,
    tenant_id   TEXT,
    request_id  TEXT,
    detail      JSONB NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX audit_log_tenant_id ON audit_log (tenant_id, id);
CREATE INDEX audit_log_at ON audit_log (at);

-- Pending OAuth connects. Only the SHA-256 of the `state` is kept, so a database reader cannot
-- complete someone else's connect; a row is deleted when used (single use) and is worthless
-- after `expires_at`.
CREATE TABLE oauth_states (
    state_hash  BYTEA PRIMARY KEY CHECK (octet_length(state_hash) = 32),
    tenant_id   TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    actor       TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX oauth_states_expires_at ON oauth_states (expires_at);

-- The Intercom workspace (`GET /me` → app.id_code, app.region) a token was issued for, when known.
ALTER TABLE intercom_credentials
    ADD COLUMN workspace_id     TEXT,
    ADD COLUMN workspace_region TEXT;

-- Key rotation finds rows sealed with an old key by this index.
CREATE INDEX intercom_credentials_key_id ON intercom_credentials (key_id);

-- Cross-replica invalidation: every change to a tenant or a credential notifies
-- `gateway_tenant_changed` with `<tenant id> <what>`; every replica LISTENs and drops its cached
-- copy. `drain` also closes the tenant's upstream sessions: the token, its status, the region or
-- the tenant's status changed, or it is gone. `reload` (name, limits) keeps them. A re-seal under
-- a new key changes neither token nor status: it notifies nobody and disturbs no session.
CREATE FUNCTION notify_tenant_changed() RETURNS trigger AS $$
BEGIN
    IF TG_TABLE_NAME = 'tenants' THEN
        IF TG_OP = 'UPDATE' THEN
            PERFORM pg_notify('gateway_tenant_changed', NEW.id || CASE
                WHEN NEW.region IS DISTINCT FROM OLD.region
                  OR NEW.status IS DISTINCT FROM OLD.status THEN ' drain' ELSE ' reload' END);
        ELSE
            PERFORM pg_notify('gateway_tenant_changed', COALESCE(NEW.id, OLD.id) || ' drain');
        END IF;
    ELSIF TG_OP <> 'UPDATE'
          OR NEW.generation IS DISTINCT FROM OLD.generation
          OR NEW.status IS DISTINCT FROM OLD.status THEN
        PERFORM pg_notify('gateway_tenant_changed', COALESCE(NEW.tenant_id, OLD.tenant_id) || ' drain');
    END IF;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER tenants_changed AFTER INSERT OR UPDATE OR DELETE ON tenants
    FOR EACH ROW EXECUTE FUNCTION notify_tenant_changed();
CREATE TRIGGER intercom_credentials_changed AFTER INSERT OR UPDATE OR DELETE ON intercom_credentials
    FOR EACH ROW EXECUTE FUNCTION notify_tenant_changed();
