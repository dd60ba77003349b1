-- Identity (seed 002 §2.1.1 users; seed 004 roles; refresh tokens). The agent service is the only
-- issuer of credentials; every other service verifies them.

-- Seed 002 §2.1.1, with all its columns and indexes. `email` is stored as given after trimming
-- and lowercasing (it is ASCII: the service refuses other addresses), and unique as such.
CREATE TABLE users (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    email VARCHAR(255) NOT NULL UNIQUE,
    password_hash VARCHAR(255) NOT NULL,
    name VARCHAR(100) NOT NULL,
    roles TEXT[] NOT NULL DEFAULT ARRAY['user'],
    permissions TEXT[] NOT NULL DEFAULT ARRAY[]::TEXT[],
    is_active BOOLEAN NOT NULL DEFAULT true,
    email_verified BOOLEAN NOT NULL DEFAULT false,
    last_login_at TIMESTAMP WITH TIME ZONE,
    created_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT NOW(),
    updated_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT NOW(),
    deleted_at TIMESTAMP WITH TIME ZONE,
    -- Register's idempotency key: a retry returns the user the first request made.
    request_id UUID UNIQUE,
    CONSTRAINT chk_users_email_lower CHECK (email = lower(email)),
    CONSTRAINT chk_users_roles CHECK (cardinality(roles) BETWEEN 1 AND 16),
    CONSTRAINT chk_users_permissions CHECK (cardinality(permissions) <= 64)
);

CREATE INDEX idx_users_email ON users(email);
CREATE INDEX idx_users_created_at ON users(created_at DESC);
CREATE INDEX idx_users_is_active ON users(is_active) WHERE is_active = true;
CREATE INDEX idx_users_deleted_at ON users(deleted_at) WHERE deleted_at IS NULL;

COMMENT ON TABLE users IS 'Platform users with authentication and authorization';
COMMENT ON COLUMN users.roles IS 'User roles: admin, developer, analyst, viewer, or one an admin defined';
COMMENT ON COLUMN users.permissions IS 'Granular permissions: agent:read, agent:write, etc.';

-- Seed 004 roles: each a list of permissions. The four built in are seeded; admins may define
-- more (their permissions travel in the access token, since other services know only these).
CREATE TABLE roles (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    name VARCHAR(50) UNIQUE NOT NULL CHECK (name ~ '^[a-z][a-z0-9_-]{0,49}$'),
    description TEXT CHECK (char_length(description) <= 1000),
    permissions JSONB NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(permissions) = 'array'),
    builtin BOOLEAN NOT NULL DEFAULT false,
    created_at TIMESTAMP WITH TIME ZONE DEFAULT CURRENT_TIMESTAMP,
    updated_at TIMESTAMP WITH TIME ZONE DEFAULT CURRENT_TIMESTAMP
);

INSERT INTO roles (name, description, permissions, builtin) VALUES
('admin', 'Everything, including users, roles and the audit log', '["*"]', true),
('developer', 'Reads, writes and runs everything; SQL schemas',
 '["agent:read","agent:write","agent:execute","persona:read","persona:write","persona:execute","code:read","code:write","code:execute","sql:read","sql:write","sql:execute","sql:schema","knowledge:read","knowledge:write","knowledge:execute","workflow:read","workflow:write","workflow:execute"]', true),
('analyst', 'Reads and runs everything',
 '["agent:read","agent:execute","persona:read","persona:execute","code:read","code:execute","sql:read","sql:execute","knowledge:read","knowledge:execute","workflow:read","workflow:execute"]', true),
('viewer', 'Reads everything', '["agent:read","persona:read","code:read","sql:read","knowledge:read","workflow:read"]', true);

-- Refresh tokens: only their SHA-256 is stored. Each use replaces the token with a new one of the
-- same family; presenting a used one again revokes the whole family (it was stolen or replayed).
CREATE TABLE refresh_tokens (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id UUID NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    family_id UUID NOT NULL,
    session_id VARCHAR(64) NOT NULL,
    token_hash CHAR(64) NOT NULL UNIQUE,
    created_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT NOW(),
    expires_at TIMESTAMP WITH TIME ZONE NOT NULL,
    used_at TIMESTAMP WITH TIME ZONE,
    revoked_at TIMESTAMP WITH TIME ZONE,
    revoke_reason VARCHAR(32)
);

CREATE INDEX idx_refresh_tokens_family ON refresh_tokens(family_id);
CREATE INDEX idx_refresh_tokens_user ON refresh_tokens(user_id) WHERE revoked_at IS NULL;
CREATE INDEX idx_refresh_tokens_session ON refresh_tokens(session_id) WHERE revoked_at IS NULL;
CREATE INDEX idx_refresh_tokens_expires ON refresh_tokens(expires_at);
