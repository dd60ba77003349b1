-- Agents, their plugins, executions and execution logs (seed 002 §2.1.2–2.1.5, §6).

-- Seed 002 §2.1.2, with all its indexes; plus CreateAgent's idempotency key and byte limits.
CREATE TABLE agents (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id UUID NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    persona_id UUID NOT NULL, -- persona_db.personas, checked through the persona service
    name VARCHAR(100) NOT NULL,
    description TEXT CHECK (octet_length(description) <= 8192),
    status VARCHAR(20) NOT NULL DEFAULT 'active',
    settings JSONB NOT NULL DEFAULT '{
        "temperature": 0.7,
        "max_tokens": 4000,
        "top_p": 1.0
    }'::jsonb CHECK (octet_length(settings::text) <= 32768),
    metadata JSONB DEFAULT '{}'::jsonb CHECK (octet_length(metadata::text) <= 32768),
    version INTEGER NOT NULL DEFAULT 1,
    created_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT NOW(),
    updated_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT NOW(),
    deleted_at TIMESTAMP WITH TIME ZONE,
    request_id UUID,

    CONSTRAINT chk_agents_status CHECK (status IN ('active', 'inactive', 'archived'))
);

CREATE INDEX idx_agents_user_id ON agents(user_id);
CREATE INDEX idx_agents_persona_id ON agents(persona_id);
CREATE INDEX idx_agents_status ON agents(status);
CREATE INDEX idx_agents_created_at ON agents(created_at DESC);
CREATE INDEX idx_agents_settings ON agents USING GIN (settings);
CREATE INDEX idx_agents_metadata ON agents USING GIN (metadata);
CREATE INDEX idx_agents_name_fts ON agents USING GIN (to_tsvector('english', name));
CREATE INDEX idx_agents_description_fts ON agents USING GIN (to_tsvector('english', description));
-- ListAgents: the owner's live agents, most recently updated first.
CREATE INDEX idx_agents_user_updated ON agents(user_id, updated_at DESC, id DESC) WHERE deleted_at IS NULL;
CREATE UNIQUE INDEX idx_agents_request_id ON agents(user_id, request_id) WHERE request_id IS NOT NULL;

COMMENT ON TABLE agents IS 'AI agents with persona and configuration';
COMMENT ON COLUMN agents.settings IS 'LLM settings: temperature, max_tokens, top_p';
COMMENT ON COLUMN agents.metadata IS 'Custom metadata for extensions';

-- Seed 002 §2.1.3, with its indexes; plus AddPlugin's idempotency key.
CREATE TABLE agent_plugins (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    agent_id UUID NOT NULL REFERENCES agents(id) ON DELETE CASCADE,
    name VARCHAR(100) NOT NULL,
    plugin_type VARCHAR(50) NOT NULL,
    config JSONB NOT NULL DEFAULT '{}'::jsonb CHECK (octet_length(config::text) <= 16384),
    is_enabled BOOLEAN NOT NULL DEFAULT true,
    order_index INTEGER NOT NULL DEFAULT 0,
    created_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT NOW(),
    updated_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT NOW(),
    request_id UUID,

    CONSTRAINT chk_plugin_type CHECK (plugin_type IN (
        'code_executor',
        'text_to_sql',
        'knowledge_rag',
        'web_search',
        'file_upload'
    ))
);

CREATE INDEX idx_agent_plugins_agent_id ON agent_plugins(agent_id);
CREATE INDEX idx_agent_plugins_enabled ON agent_plugins(is_enabled) WHERE is_enabled = true;
-- One enabled plugin of each type per agent.
CREATE UNIQUE INDEX idx_agent_plugins_unique ON agent_plugins(agent_id, plugin_type) WHERE is_enabled = true;
CREATE UNIQUE INDEX idx_agent_plugins_request_id ON agent_plugins(agent_id, request_id) WHERE request_id IS NOT NULL;

COMMENT ON TABLE agent_plugins IS 'Plugins attached to agents';
COMMENT ON COLUMN agent_plugins.order_index IS 'Execution order of plugins';

-- Seed 002 §2.1.4, with its indexes; plus StartExecution's idempotency key and the callback
-- (seed 003: callback_url, callback_events, callback_secret; the secret sealed).
CREATE TABLE executions (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    agent_id UUID NOT NULL REFERENCES agents(id) ON DELETE CASCADE,
    user_id UUID NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    workflow_id UUID,
    status VARCHAR(20) NOT NULL DEFAULT 'pending',
    progress INTEGER NOT NULL DEFAULT 0,

    input JSONB NOT NULL CHECK (octet_length(input::text) <= 1048576),
    output JSONB CHECK (octet_length(output::text) <= 2097152),
    error JSONB CHECK (octet_length(error::text) <= 16384),

    execution_time_ms INTEGER,
    tokens_used INTEGER,
    cost DECIMAL(10, 4),

    created_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT NOW(),
    started_at TIMESTAMP WITH TIME ZONE,
    completed_at TIMESTAMP WITH TIME ZONE,

    retry_count INTEGER NOT NULL DEFAULT 0,
    max_retries INTEGER NOT NULL DEFAULT 3,
    parent_execution_id UUID REFERENCES executions(id),

    request_id UUID,
    callback_url TEXT CHECK (octet_length(callback_url) <= 2048),
    callback_events TEXT[] NOT NULL DEFAULT ARRAY[]::TEXT[],
    callback_secret TEXT,

    CONSTRAINT chk_executions_status CHECK (status IN (
        'pending', 'running', 'completed', 'failed', 'cancelled', 'timeout'
    )),
    CONSTRAINT chk_executions_progress CHECK (progress >= 0 AND progress <= 100),
    CONSTRAINT chk_executions_retries CHECK (max_retries BETWEEN 0 AND 10 AND retry_count >= 0)
);

CREATE INDEX idx_executions_agent_id ON executions(agent_id);
CREATE INDEX idx_executions_user_id ON executions(user_id);
CREATE INDEX idx_executions_workflow_id ON executions(workflow_id);
CREATE INDEX idx_executions_status ON executions(status);
CREATE INDEX idx_executions_created_at ON executions(created_at DESC);
CREATE INDEX idx_executions_user_status ON executions(user_id, status, created_at DESC);
CREATE INDEX idx_executions_active ON executions(agent_id, status) WHERE status IN ('pending', 'running');
CREATE INDEX idx_executions_input ON executions USING GIN (input);
CREATE INDEX idx_executions_output ON executions USING GIN (output);
CREATE INDEX idx_executions_user_created ON executions(user_id, created_at DESC, id DESC);
CREATE UNIQUE INDEX idx_executions_request_id ON executions(user_id, request_id) WHERE request_id IS NOT NULL;

COMMENT ON TABLE executions IS 'Agent execution history and status';
COMMENT ON COLUMN executions.cost IS 'Execution cost in USD';

-- Seed 002 §2.1.5 as partitioned by month in §6.1. A partitioned table's primary key must hold
-- the partition key, so it is (id, created_at), and the reference to executions is kept by the
-- service (rows go when their partition is dropped, after EXECUTION_LOG_RETENTION_MONTHS).
-- The core's partition keeper creates the coming months' partitions (§6.2, without pg_cron).
CREATE TABLE execution_logs (
    id BIGSERIAL,
    execution_id UUID NOT NULL,
    level VARCHAR(10) NOT NULL,
    message TEXT NOT NULL CHECK (octet_length(message) <= 16384),
    metadata JSONB CHECK (octet_length(metadata::text) <= 16384),
    created_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT NOW(),
    PRIMARY KEY (id, created_at),
    CONSTRAINT chk_log_level CHECK (level IN ('debug', 'info', 'warning', 'error'))
) PARTITION BY RANGE (created_at);

CREATE INDEX idx_execution_logs_execution_id ON execution_logs(execution_id, created_at DESC);
CREATE INDEX idx_execution_logs_level ON execution_logs(level);
-- ListExecutionLogs and WatchExecution read an execution's lines in id order.
CREATE INDEX idx_execution_logs_execution_seq ON execution_logs(execution_id, id);

COMMENT ON TABLE execution_logs IS 'Detailed logs for execution debugging';
