-- Workflows, their snapshots, executions and per-node execution state (seed 002 §2.6, §1.3).

-- Seed 002 §2.6.1 with all its indexes; plus byte limits, the schedules (cron triggers) and
-- CreateWorkflow's idempotency key.
CREATE TABLE workflows (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id UUID NOT NULL, -- agent_db.users
    name VARCHAR(100) NOT NULL,
    description TEXT CHECK (octet_length(description) <= 8192),
    status VARCHAR(20) NOT NULL DEFAULT 'draft',
    version INTEGER NOT NULL DEFAULT 1,

    -- Workflow definition (VueFlow format)
    nodes JSONB NOT NULL DEFAULT '[]'::jsonb CHECK (octet_length(nodes::text) <= 4194304),
    edges JSONB NOT NULL DEFAULT '[]'::jsonb CHECK (octet_length(edges::text) <= 1048576),
    viewport JSONB DEFAULT '{"x": 0, "y": 0, "zoom": 1}'::jsonb CHECK (octet_length(viewport::text) <= 1024),

    metadata JSONB DEFAULT '{}'::jsonb CHECK (octet_length(metadata::text) <= 32768),
    tags TEXT[] CHECK (cardinality(tags) <= 20),
    schedules JSONB NOT NULL DEFAULT '[]'::jsonb CHECK (octet_length(schedules::text) <= 65536),

    created_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT NOW(),
    updated_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT NOW(),
    published_at TIMESTAMP WITH TIME ZONE,
    deleted_at TIMESTAMP WITH TIME ZONE,
    request_id UUID,

    CONSTRAINT chk_workflow_status CHECK (status IN ('draft', 'active', 'paused', 'archived'))
);

CREATE INDEX idx_workflows_user_id ON workflows(user_id);
CREATE INDEX idx_workflows_status ON workflows(status);
CREATE INDEX idx_workflows_created_at ON workflows(created_at DESC);
CREATE INDEX idx_workflows_tags ON workflows USING GIN (tags);
CREATE INDEX idx_workflows_nodes ON workflows USING GIN (nodes);
CREATE INDEX idx_workflows_edges ON workflows USING GIN (edges);
CREATE INDEX idx_workflows_name_fts ON workflows USING GIN (to_tsvector('english', name));
-- ListWorkflows: the owner's live workflows, most recently updated first.
CREATE INDEX idx_workflows_user_updated ON workflows(user_id, updated_at DESC, id DESC) WHERE deleted_at IS NULL;
CREATE UNIQUE INDEX idx_workflows_request_id ON workflows(user_id, request_id) WHERE request_id IS NOT NULL;
-- The scheduler: live workflows with a schedule.
CREATE INDEX idx_workflows_scheduled ON workflows(id) WHERE deleted_at IS NULL AND schedules <> '[]'::jsonb;

COMMENT ON TABLE workflows IS 'Visual workflows with VueFlow format';
COMMENT ON COLUMN workflows.nodes IS 'VueFlow nodes array';
COMMENT ON COLUMN workflows.edges IS 'VueFlow edges array';

-- Seed 002 §2.6.3, plus the version the snapshot holds (one snapshot per version: a definition
-- never changes under a version number) and whether PublishWorkflow wrote it.
CREATE TABLE workflow_snapshots (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    workflow_id UUID NOT NULL REFERENCES workflows(id) ON DELETE CASCADE,
    workflow_version INTEGER NOT NULL,
    snapshot_data JSONB NOT NULL,
    published BOOLEAN NOT NULL DEFAULT false,
    created_by UUID NOT NULL, -- agent_db.users
    created_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT NOW(),
    UNIQUE (workflow_id, workflow_version)
);

CREATE INDEX idx_workflow_snapshots_workflow_id ON workflow_snapshots(workflow_id, created_at DESC);

COMMENT ON TABLE workflow_snapshots IS 'Workflow version snapshots for CRDT persistence';

-- Seed 002 §2.6.2. Node state lives in workflow_node_executions (a row per node, committed before
-- its dependents start) rather than in one node_executions array rewritten at every step. Added:
-- the snapshot it runs, 'timeout', the idempotency key, resumes, the runner's fencing token, the
-- schedule fire that started it, and the deadline.
CREATE TABLE workflow_executions (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    workflow_id UUID NOT NULL REFERENCES workflows(id) ON DELETE CASCADE,
    snapshot_id UUID NOT NULL REFERENCES workflow_snapshots(id),
    workflow_version INTEGER NOT NULL,
    user_id UUID NOT NULL, -- agent_db.users
    status VARCHAR(20) NOT NULL DEFAULT 'pending',

    input JSONB NOT NULL CHECK (octet_length(input::text) <= 1048576),
    output JSONB CHECK (octet_length(output::text) <= 4194304),
    error JSONB CHECK (octet_length(error::text) <= 16384),

    current_node_id VARCHAR(100),

    total_nodes INTEGER,
    completed_nodes INTEGER NOT NULL DEFAULT 0,
    execution_time_ms INTEGER,
    cost DECIMAL(10, 4),

    created_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT NOW(),
    started_at TIMESTAMP WITH TIME ZONE,
    completed_at TIMESTAMP WITH TIME ZONE,

    request_id UUID,
    resume_count INTEGER NOT NULL DEFAULT 0,
    -- Set by the runner that holds the run; a runner whose token was replaced (its lease lapsed
    -- and another took over) can commit nothing more.
    runner_token UUID,
    schedule_id VARCHAR(100),
    steps INTEGER NOT NULL DEFAULT 0,
    deadline_at TIMESTAMP WITH TIME ZONE,
    -- The starter's credential (authorization or x-api-key), sealed with WORKFLOW_ENCRYPTION_KEY,
    -- for node calls to other services when the run resumes in another process.
    credential_key_id VARCHAR(64),
    credential_sealed TEXT CHECK (octet_length(credential_sealed) <= 16384),

    CONSTRAINT chk_wf_exec_status CHECK (status IN ('pending', 'running', 'completed', 'failed', 'cancelled', 'timeout'))
);

CREATE INDEX idx_workflow_executions_workflow_id ON workflow_executions(workflow_id);
CREATE INDEX idx_workflow_executions_user_id ON workflow_executions(user_id);
CREATE INDEX idx_workflow_executions_status ON workflow_executions(status);
CREATE INDEX idx_workflow_executions_created_at ON workflow_executions(created_at DESC);
CREATE INDEX idx_wf_exec_workflow_status ON workflow_executions(workflow_id, status, created_at DESC);
-- ListWorkflowExecutions: the caller's, newest first.
CREATE INDEX idx_wf_exec_user_created ON workflow_executions(user_id, created_at DESC, id DESC);
CREATE UNIQUE INDEX idx_wf_exec_request_id ON workflow_executions(user_id, request_id) WHERE request_id IS NOT NULL;

COMMENT ON TABLE workflow_executions IS 'Workflow execution history';

-- One row per node of an execution (seed 002 §1.3's workflow_nodes, as execution state).
CREATE TABLE workflow_node_executions (
    execution_id UUID NOT NULL REFERENCES workflow_executions(id) ON DELETE CASCADE,
    node_id VARCHAR(100) NOT NULL,
    node_type VARCHAR(50) NOT NULL,
    status VARCHAR(20) NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0,
    -- The data as resolved for the last attempt, the output, the error.
    -- (The service caps them at 1 MiB as compact JSON; jsonb's text form is up to about twice
    -- that, so these limits only stop what the service's own checks would have.)
    input JSONB CHECK (octet_length(input::text) <= 4194304),
    output JSONB CHECK (octet_length(output::text) <= 4194304),
    error JSONB CHECK (octet_length(error::text) <= 16384),
    -- ResumeWorkflowExecution's changed data for this node.
    data_override JSONB CHECK (octet_length(data_override::text) <= 65536),
    child_execution_id VARCHAR(100),
    cost DECIMAL(10, 4),
    start_seq BIGINT,
    started_at TIMESTAMP WITH TIME ZONE,
    completed_at TIMESTAMP WITH TIME ZONE,
    execution_time_ms INTEGER,
    PRIMARY KEY (execution_id, node_id),
    CONSTRAINT chk_wf_node_status CHECK (status IN ('pending', 'running', 'completed', 'failed', 'skipped', 'cancelled'))
);

-- What happened to each node, in order (WatchWorkflowExecution; the run's history).
CREATE TABLE workflow_execution_events (
    id BIGSERIAL PRIMARY KEY,
    execution_id UUID NOT NULL REFERENCES workflow_executions(id) ON DELETE CASCADE,
    node_id VARCHAR(100) NOT NULL,
    kind VARCHAR(20) NOT NULL,
    attempt INTEGER NOT NULL,
    message TEXT CHECK (octet_length(message) <= 4096),
    created_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT NOW(),
    CONSTRAINT chk_wf_event_kind CHECK (kind IN ('started', 'retried', 'finished', 'failed', 'skipped', 'interrupted'))
);

CREATE INDEX idx_wf_events_execution ON workflow_execution_events(execution_id, id);
