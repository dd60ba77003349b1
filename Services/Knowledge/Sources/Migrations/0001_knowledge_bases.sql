-- Seed 004 knowledge_bases, with what the contract adds (chunking strategy, version,
-- idempotency key) and byte limits; owner_id references agent_db.users (another database).
-- pgvector is created here for the documents and chunks that come next.
CREATE EXTENSION IF NOT EXISTS vector;

CREATE TABLE knowledge_bases (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    name VARCHAR(255) NOT NULL,
    description TEXT NOT NULL DEFAULT '' CHECK (octet_length(description) <= 16384),
    owner_id UUID NOT NULL,
    embedding_model VARCHAR(255) NOT NULL,
    chunk_size INTEGER NOT NULL DEFAULT 512 CHECK (chunk_size BETWEEN 16 AND 8192),
    chunk_overlap INTEGER NOT NULL DEFAULT 50 CHECK (chunk_overlap >= 0 AND chunk_overlap * 2 < chunk_size),
    chunk_strategy VARCHAR(20) NOT NULL DEFAULT 'paragraph' CHECK (chunk_strategy IN ('fixed', 'sentence', 'paragraph')),
    vector_dimension INTEGER NOT NULL CHECK (vector_dimension BETWEEN 1 AND 16000),
    index_type VARCHAR(50) NOT NULL DEFAULT 'HNSW',
    similarity_metric VARCHAR(50) NOT NULL DEFAULT 'cosine',
    document_count INTEGER NOT NULL DEFAULT 0,
    chunk_count BIGINT NOT NULL DEFAULT 0,
    status VARCHAR(20) NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'building', 'error', 'deleted', 'archived')),
    version INTEGER NOT NULL DEFAULT 1,
    request_id UUID,
    created_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT CURRENT_TIMESTAMP,
    updated_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT CURRENT_TIMESTAMP
);

CREATE INDEX idx_knowledge_bases_owner_id ON knowledge_bases(owner_id);
CREATE INDEX idx_knowledge_bases_status ON knowledge_bases(status);
CREATE UNIQUE INDEX idx_knowledge_bases_owner_name ON knowledge_bases(owner_id, lower(name));
CREATE UNIQUE INDEX idx_knowledge_bases_request ON knowledge_bases(owner_id, request_id) WHERE request_id IS NOT NULL;
