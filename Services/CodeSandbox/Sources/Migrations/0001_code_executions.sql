-- Seed 002 §2.3 code_executions, with every column and index, plus what the contract reports
-- (limits, truncation, the signal, why the run ended, the idempotency key) and §1.3's
-- code_outputs: the files a run wrote under outputs/.
CREATE TABLE code_executions (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id UUID NOT NULL, -- References agent_db.users
    agent_id UUID, -- Optional: if triggered by agent
    language VARCHAR(20) NOT NULL,
    code TEXT NOT NULL CHECK (octet_length(code) <= 262144),
    status VARCHAR(20) NOT NULL DEFAULT 'pending',

    -- Container info: the sandbox slot (its uid) and the service instance that ran it.
    container_id VARCHAR(100),
    container_ip VARCHAR(45),

    -- Results, each capped by the run's max_output_bytes.
    stdout TEXT CHECK (octet_length(stdout) <= 8388608),
    stderr TEXT CHECK (octet_length(stderr) <= 8388608),
    exit_code INTEGER,

    -- Metrics
    execution_time_ms INTEGER,
    memory_used_mb INTEGER,
    cpu_usage_percent DECIMAL(5, 2),

    -- Security: the static findings as objects {rule, severity, message, line, column}.
    security_score INTEGER CHECK (security_score BETWEEN 0 AND 100),
    security_issues JSONB NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(security_issues) = 'array'),

    -- Timestamps
    created_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT NOW(),
    started_at TIMESTAMP WITH TIME ZONE,
    completed_at TIMESTAMP WITH TIME ZONE,

    -- Beyond the seed
    limits JSONB NOT NULL CHECK (jsonb_typeof(limits) = 'object'),
    stdin_bytes INTEGER NOT NULL DEFAULT 0,
    type_check BOOLEAN NOT NULL DEFAULT false,
    stdout_truncated BOOLEAN NOT NULL DEFAULT false,
    stderr_truncated BOOLEAN NOT NULL DEFAULT false,
    outputs_truncated BOOLEAN NOT NULL DEFAULT false,
    signal INTEGER,
    termination_reason VARCHAR(32),
    error_message TEXT CHECK (char_length(error_message) <= 2000),
    request_id UUID,

    CONSTRAINT chk_code_language CHECK (language IN ('python', 'javascript', 'typescript')),
    CONSTRAINT chk_code_status CHECK (status IN (
        'pending', 'running', 'completed', 'failed', 'timeout', 'cancelled'
    ))
);

-- Indexes
CREATE INDEX idx_code_executions_user_id ON code_executions(user_id);
CREATE INDEX idx_code_executions_agent_id ON code_executions(agent_id);
CREATE INDEX idx_code_executions_status ON code_executions(status);
CREATE INDEX idx_code_executions_created_at ON code_executions(created_at DESC);

-- Partial index for active executions
CREATE INDEX idx_code_executions_active ON code_executions(container_id)
WHERE status IN ('pending', 'running');

-- A user's listing, newest first, and their idempotency keys.
CREATE INDEX idx_code_executions_user_created ON code_executions(user_id, created_at DESC, id DESC);
CREATE UNIQUE INDEX idx_code_executions_request ON code_executions(user_id, request_id) WHERE request_id IS NOT NULL;

COMMENT ON TABLE code_executions IS 'Code execution history in sandbox';
COMMENT ON COLUMN code_executions.security_score IS 'Security score 0-100: static findings and run-time events (README)';

CREATE TABLE code_outputs (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    execution_id UUID NOT NULL REFERENCES code_executions(id) ON DELETE CASCADE,
    name VARCHAR(256) NOT NULL,
    content_type VARCHAR(100) NOT NULL,
    size_bytes BIGINT NOT NULL CHECK (size_bytes >= 0),
    content BYTEA NOT NULL CHECK (octet_length(content) <= 10485760),
    created_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT NOW(),
    UNIQUE (execution_id, name)
);

CREATE INDEX idx_code_outputs_execution ON code_outputs(execution_id);
