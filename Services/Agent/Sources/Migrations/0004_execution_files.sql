-- Files attached to an execution for its file_upload plugin (StartExecutionRequest.files): at
-- most 20 and 2 MiB together per execution (checked by the service), kept with the execution so
-- that a retry has them too.
CREATE TABLE execution_files (
    execution_id UUID NOT NULL REFERENCES executions(id) ON DELETE CASCADE,
    name VARCHAR(128) NOT NULL,
    content_type VARCHAR(100) NOT NULL,
    content BYTEA NOT NULL CHECK (octet_length(content) <= 2097152),
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (execution_id, name)
);
