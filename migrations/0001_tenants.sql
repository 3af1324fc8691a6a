-- Tenants and their Intercom credentials.
--
-- The Intercom access token is never stored in clear: `ciphertext` is AES-256-GCM over the token
-- with the tenant id bound as associated data (see src/tenants/crypto.rs), `key_id` names the
-- entry of GATEWAY_ENCRYPTION_KEYS that sealed it, so keys can rotate row by row.

CREATE TABLE tenants (
    id              TEXT PRIMARY KEY,
    name            TEXT NOT NULL,
    region          TEXT NOT NULL CHECK (region IN ('us', 'eu')),
    status          TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'suspended')),
    -- NULL = the gateway-wide defaults (GATEWAY_DEFAULT_RATE_PER_MINUTE / GATEWAY_DEFAULT_BURST).
    rate_per_minute INTEGER CHECK (rate_per_minute > 0),
    rate_burst      INTEGER CHECK (rate_burst > 0),
    -- NULL = unlimited.
    monthly_quota   BIGINT CHECK (monthly_quota >= 0),
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE intercom_credentials (
    tenant_id   TEXT PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
    key_id      TEXT NOT NULL,
    nonce       BYTEA NOT NULL CHECK (octet_length(nonce) = 12),
    ciphertext  BYTEA NOT NULL,
    -- A short, non-reversible fingerprint so operators can tell two tokens apart.
    fingerprint TEXT NOT NULL,
    status      TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'rejected')),
    -- Bumped on every replacement: upstream sessions are keyed by it, so a session is never
    -- used with another generation's token.
    generation  BIGINT NOT NULL DEFAULT 1,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    rejected_at TIMESTAMPTZ
);
