-- Seed 002 §2.4: databases, schemas, tables and sql_queries with every column and index, plus
-- what the contract needs (versions, key ids, idempotency keys, the relation allowlist), and
-- seed 000's auth_policy for column policies (deny or mask per table.column).
CREATE TABLE databases (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id UUID NOT NULL, -- References agent_db.users
    name VARCHAR(100) NOT NULL,
    -- AES-GCM sealed box (nonce, ciphertext, tag) of the connection config as JSON, base64,
    -- bound to (id, user_id) as associated data; see key_id.
    connection_string TEXT NOT NULL CHECK (octet_length(connection_string) <= 16384),
    -- Which SQL_ENCRYPTION_KEY sealed it (keys rotate).
    key_id VARCHAR(64) NOT NULL,
    database_type VARCHAR(50) NOT NULL,
    is_active BOOLEAN NOT NULL DEFAULT true,
    -- "schema.table" names queries may read; empty = every synced relation.
    allowed_tables TEXT[] NOT NULL DEFAULT '{}' CHECK (cardinality(allowed_tables) <= 1000),
    version INTEGER NOT NULL DEFAULT 1,
    request_id UUID,
    last_sync_at TIMESTAMP WITH TIME ZONE,
    created_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT NOW(),
    updated_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT NOW(),

    CONSTRAINT chk_db_type CHECK (database_type IN (
        'postgresql', 'mysql', 'mssql', 'sqlite'
    ))
);

CREATE INDEX idx_databases_user_id ON databases(user_id);
CREATE INDEX idx_databases_is_active ON databases(is_active) WHERE is_active = true;
CREATE UNIQUE INDEX idx_databases_user_name ON databases(user_id, lower(name));
CREATE UNIQUE INDEX idx_databases_request ON databases(user_id, request_id) WHERE request_id IS NOT NULL;

COMMENT ON TABLE databases IS 'User database connections';
COMMENT ON COLUMN databases.connection_string IS 'Encrypted connection string';

CREATE TABLE schemas (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    database_id UUID NOT NULL REFERENCES databases(id) ON DELETE CASCADE,
    schema_name VARCHAR(100) NOT NULL,
    description TEXT CHECK (octet_length(description) <= 16384),
    is_enhanced BOOLEAN NOT NULL DEFAULT false,
    enhanced_at TIMESTAMP WITH TIME ZONE,
    created_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT NOW(),
    updated_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT NOW()
);

CREATE INDEX idx_schemas_database_id ON schemas(database_id);
CREATE UNIQUE INDEX idx_schemas_unique ON schemas(database_id, schema_name);

COMMENT ON TABLE schemas IS 'Database schemas metadata';

CREATE TABLE tables (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    schema_id UUID NOT NULL REFERENCES schemas(id) ON DELETE CASCADE,
    table_name VARCHAR(100) NOT NULL,
    description TEXT CHECK (octet_length(description) <= 16384),
    is_view BOOLEAN NOT NULL DEFAULT false,
    row_count BIGINT,
    columns JSONB NOT NULL CHECK (octet_length(columns::text) <= 1048576),
    indexes JSONB CHECK (octet_length(indexes::text) <= 262144),
    foreign_keys JSONB CHECK (octet_length(foreign_keys::text) <= 262144),
    sample_data JSONB CHECK (octet_length(sample_data::text) <= 65536),
    last_analyzed_at TIMESTAMP WITH TIME ZONE,
    created_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT NOW(),
    updated_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT NOW()
);

CREATE INDEX idx_tables_schema_id ON tables(schema_id);
CREATE UNIQUE INDEX idx_tables_unique ON tables(schema_id, table_name);
CREATE INDEX idx_tables_table_name ON tables(table_name);
CREATE INDEX idx_tables_columns ON tables USING GIN (columns);
CREATE INDEX idx_tables_description_fts ON tables USING GIN (to_tsvector('english', description));

COMMENT ON TABLE tables IS 'Table metadata with enhanced descriptions';
COMMENT ON COLUMN tables.columns IS 'JSON array of column definitions';

CREATE TABLE sql_queries (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id UUID NOT NULL, -- References agent_db.users
    database_id UUID NOT NULL REFERENCES databases(id) ON DELETE CASCADE,
    natural_language TEXT NOT NULL CHECK (octet_length(natural_language) <= 8192),
    generated_sql TEXT NOT NULL CHECK (octet_length(generated_sql) <= 65536),
    explanation TEXT CHECK (octet_length(explanation) <= 8192),
    validation_result JSONB CHECK (octet_length(validation_result::text) <= 65536),
    is_safe BOOLEAN NOT NULL,
    -- Which generator wrote it ("offline", "openai:<model>"), and its usage.
    generator VARCHAR(100),
    prompt_tokens INTEGER NOT NULL DEFAULT 0,
    completion_tokens INTEGER NOT NULL DEFAULT 0,
    request_id UUID,

    -- Execution
    executed BOOLEAN NOT NULL DEFAULT false,
    result_rows INTEGER,
    execution_time_ms INTEGER,
    error_message TEXT CHECK (octet_length(error_message) <= 4096),

    -- Timestamps
    created_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT NOW(),
    executed_at TIMESTAMP WITH TIME ZONE
);

CREATE INDEX idx_sql_queries_user_id ON sql_queries(user_id);
CREATE INDEX idx_sql_queries_database_id ON sql_queries(database_id);
CREATE INDEX idx_sql_queries_is_safe ON sql_queries(is_safe);
CREATE INDEX idx_sql_queries_created_at ON sql_queries(created_at DESC);
CREATE INDEX idx_sql_queries_user_created ON sql_queries(user_id, created_at DESC, id DESC);
CREATE UNIQUE INDEX idx_sql_queries_request ON sql_queries(user_id, request_id) WHERE request_id IS NOT NULL;
CREATE INDEX idx_sql_queries_nl_fts ON sql_queries USING GIN (to_tsvector('english', natural_language));

-- Seed 000 auth_policy: one row per (database, table.column); resource is
-- "sql:<database_id>:<schema>.<table>", field_name the column, effect deny or mask.
CREATE TABLE auth_policy (
    id BIGSERIAL PRIMARY KEY,
    tenant_id VARCHAR(64) NOT NULL, -- the database's owner
    subject_type VARCHAR(16) NOT NULL CHECK (subject_type IN ('user', 'role')),
    subject_id VARCHAR(64) NOT NULL, -- '*': everyone who queries the database
    resource VARCHAR(256) NOT NULL,
    action VARCHAR(32) NOT NULL,
    field_name VARCHAR(128),
    effect VARCHAR(16) NOT NULL CHECK (effect IN ('allow', 'deny', 'mask')),
    mask_kind VARCHAR(16) CHECK (mask_kind IN ('null', 'hash', 'partial')),
    database_id UUID NOT NULL REFERENCES databases(id) ON DELETE CASCADE,
    created_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT NOW()
);

CREATE UNIQUE INDEX idx_auth_policy_field ON auth_policy(database_id, resource, field_name, subject_type, subject_id);
