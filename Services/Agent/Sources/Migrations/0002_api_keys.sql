-- API keys (seeds 003 and 004 api_keys): only the SHA-256 of a key is stored; the key itself is
-- shown once. A key grants at most its owner's permissions, checked when it is created and
-- again each time it is verified (an owner who loses a permission takes it from their keys).
CREATE TABLE api_keys (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id UUID NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name VARCHAR(100) NOT NULL CHECK (char_length(name) BETWEEN 1 AND 100),
    description TEXT CHECK (char_length(description) <= 1000),
    key_hash VARCHAR(64) NOT NULL UNIQUE,
    key_prefix VARCHAR(16) NOT NULL,
    -- Empty: all of the owner's permissions.
    permissions TEXT[] NOT NULL DEFAULT ARRAY[]::TEXT[] CHECK (cardinality(permissions) <= 64),
    -- Calls per minute (seed 003).
    rate_limit INTEGER NOT NULL DEFAULT 100 CHECK (rate_limit BETWEEN 1 AND 1000000),
    status VARCHAR(20) NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'inactive', 'revoked')),
    expires_at TIMESTAMP WITH TIME ZONE,
    last_used_at TIMESTAMP WITH TIME ZONE,
    created_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT NOW(),
    revoked_at TIMESTAMP WITH TIME ZONE,
    -- CreateApiKey's idempotency key.
    request_id UUID UNIQUE
);

CREATE INDEX idx_api_keys_user_id ON api_keys(user_id, created_at DESC, id DESC);
CREATE INDEX idx_api_keys_key_hash ON api_keys(key_hash);
CREATE INDEX idx_api_keys_status ON api_keys(status);
