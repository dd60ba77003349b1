-- Seed 002 §2.5 documents and document_chunks with their indexes, and what the contract adds:
-- the knowledge base, tags, chunking options, progress, version, idempotency key, byte limits.
-- Deviations from the seed, and why:
--   * documents.file_path is replaced by document_files: the original bytes live in this database
--     (no shared file system between replicas), apart from the row so lists never read them.
--   * content_type also admits .docx; the full-text index on documents.content covers the first
--     256 KiB (a tsvector holds at most 1 MiB, so a large document would fail to insert).
--   * document_chunks.embedding is a `vector` of any dimension (knowledge bases may use models of
--     different dimensions) with `dimension` beside it; the service creates one partial HNSW
--     expression index per configured dimension at start-up (KnowledgeIndexes), cosine, instead of
--     the seed's ivfflat(1536).
--   * chunks carry their knowledge base (searched without a join), their keywords as a tsvector
--     with the document title (the BM25 statistics below are kept from it) and are unique per
--     (document, chunk_index).
ALTER TABLE knowledge_bases ADD COLUMN language VARCHAR(63) NOT NULL DEFAULT 'english';
-- BM25's average chunk length: the keyword lengths of the knowledge base's chunks, summed.
ALTER TABLE knowledge_bases ADD COLUMN keyword_length_total BIGINT NOT NULL DEFAULT 0;

CREATE TABLE documents (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id UUID NOT NULL, -- References agent_db.users
    knowledge_base_id UUID NOT NULL REFERENCES knowledge_bases(id) ON DELETE CASCADE,
    title VARCHAR(255) NOT NULL,
    -- The extracted text (empty until extraction); 32 MiB at most.
    content TEXT NOT NULL DEFAULT '' CHECK (octet_length(content) <= 33554432),
    content_type VARCHAR(100) NOT NULL,
    file_name VARCHAR(255),
    file_size BIGINT NOT NULL DEFAULT 0,
    content_hash CHAR(64) NOT NULL,
    metadata JSONB NOT NULL DEFAULT '{}'::jsonb CHECK (octet_length(metadata::text) <= 65536),
    tags TEXT[] NOT NULL DEFAULT '{}' CHECK (cardinality(tags) <= 32),
    chunk_strategy VARCHAR(20) NOT NULL CHECK (chunk_strategy IN ('fixed', 'sentence', 'paragraph')),
    chunk_size INTEGER NOT NULL CHECK (chunk_size BETWEEN 16 AND 8192),
    chunk_overlap INTEGER NOT NULL CHECK (chunk_overlap >= 0 AND chunk_overlap * 2 < chunk_size),

    -- Processing status
    status VARCHAR(20) NOT NULL DEFAULT 'uploaded',
    status_message TEXT CHECK (octet_length(status_message) <= 1024),
    chunk_count INTEGER NOT NULL DEFAULT 0,
    chunks_indexed INTEGER NOT NULL DEFAULT 0,
    chunk_total INTEGER NOT NULL DEFAULT 0,
    -- Bumped by every (re)index request; a job indexes only the generation it was queued for.
    generation INTEGER NOT NULL DEFAULT 1,
    indexed_at TIMESTAMP WITH TIME ZONE,

    version INTEGER NOT NULL DEFAULT 1,
    request_id UUID,

    -- Timestamps
    created_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT NOW(),
    updated_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT NOW(),
    deleted_at TIMESTAMP WITH TIME ZONE,

    CONSTRAINT chk_doc_status CHECK (status IN (
        'uploaded', 'processing', 'indexed', 'failed'
    )),
    CONSTRAINT chk_content_type CHECK (content_type IN (
        'text/plain', 'text/markdown', 'application/pdf',
        'application/msword', 'text/html',
        'application/vnd.openxmlformats-officedocument.wordprocessingml.document'
    ))
);

-- Indexes
CREATE INDEX idx_documents_user_id ON documents(user_id);
CREATE INDEX idx_documents_status ON documents(status);
CREATE INDEX idx_documents_created_at ON documents(created_at DESC);
CREATE INDEX idx_documents_metadata ON documents USING GIN (metadata);
CREATE INDEX idx_documents_tags ON documents USING GIN (tags);
CREATE INDEX idx_documents_knowledge_base ON documents(knowledge_base_id, updated_at DESC) WHERE deleted_at IS NULL;
CREATE UNIQUE INDEX idx_documents_request ON documents(user_id, request_id) WHERE request_id IS NOT NULL;

-- Full-text search
CREATE INDEX idx_documents_title_fts ON documents USING GIN (to_tsvector('english', title));
CREATE INDEX idx_documents_content_fts ON documents USING GIN (to_tsvector('english', left(content, 262144)));

-- The original upload, read only by extraction.
CREATE TABLE document_files (
    document_id UUID PRIMARY KEY REFERENCES documents(id) ON DELETE CASCADE,
    data BYTEA NOT NULL CHECK (octet_length(data) <= 1073741824)
);

CREATE TABLE document_chunks (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    document_id UUID NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
    knowledge_base_id UUID NOT NULL REFERENCES knowledge_bases(id) ON DELETE CASCADE,
    chunk_index INTEGER NOT NULL,
    content TEXT NOT NULL CHECK (octet_length(content) <= 1048576),
    content_length INTEGER NOT NULL,

    -- The embedding, of the knowledge base's model; its dimension beside it for the partial
    -- per-dimension HNSW indexes.
    embedding vector NOT NULL,
    dimension INTEGER NOT NULL CHECK (dimension = vector_dims(embedding)),
    -- The document title and the chunk, in the knowledge base's text-search configuration, and
    -- how many word positions that is (BM25's length).
    keywords tsvector NOT NULL,
    keyword_length INTEGER NOT NULL CHECK (keyword_length >= 0),

    -- Metadata
    metadata JSONB NOT NULL DEFAULT '{}'::jsonb CHECK (octet_length(metadata::text) <= 65536),

    created_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT NOW(),

    CONSTRAINT chk_chunk_index CHECK (chunk_index >= 0)
);

-- Indexes
CREATE UNIQUE INDEX idx_document_chunks_document_id ON document_chunks(document_id, chunk_index);
CREATE INDEX idx_document_chunks_knowledge_base ON document_chunks(knowledge_base_id);
CREATE INDEX idx_document_chunks_keywords ON document_chunks USING GIN (keywords);

-- KEYWORD search is BM25 over an inverted index kept here rather than by ranking tsvectors:
-- re-reading (and de-TOASTing) every matching chunk's tsvector costs hundreds of milliseconds
-- once a common word matches thousands of chunks. keyword_postings holds one row per (term,
-- chunk) with the term's frequency and the chunk's length, read by index-only scans of the
-- primary key; keyword_terms holds in how many chunks each term occurs (BM25's IDF). Both are
-- kept by the triggers below in the statement that adds or removes chunks, so they are never
-- out of step with the chunks.
CREATE TABLE keyword_postings (
    knowledge_base_id UUID NOT NULL,
    term TEXT NOT NULL,
    chunk_id UUID NOT NULL,
    document_id UUID NOT NULL,
    tf INTEGER NOT NULL,
    length INTEGER NOT NULL,
    PRIMARY KEY (knowledge_base_id, term, chunk_id) INCLUDE (document_id, tf, length)
);

CREATE TABLE keyword_terms (
    knowledge_base_id UUID NOT NULL REFERENCES knowledge_bases(id) ON DELETE CASCADE,
    term TEXT NOT NULL,
    chunks INTEGER NOT NULL,
    PRIMARY KEY (knowledge_base_id, term)
);

CREATE FUNCTION keyword_terms_add() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- Rows in key order, so two transactions adding chunks never wait for each other in a cycle.
    INSERT INTO keyword_postings (knowledge_base_id, term, chunk_id, document_id, tf, length)
    SELECT n.knowledge_base_id, u.lexeme, n.id, n.document_id, coalesce(array_length(u.positions, 1), 1), n.keyword_length
    FROM added n, unnest(n.keywords) u
    ORDER BY 1, 2, 3;
    INSERT INTO keyword_terms (knowledge_base_id, term, chunks)
    SELECT n.knowledge_base_id, t.term, count(*)
    FROM added n, unnest(tsvector_to_array(n.keywords)) AS t(term)
    GROUP BY n.knowledge_base_id, t.term
    ORDER BY n.knowledge_base_id, t.term
    ON CONFLICT (knowledge_base_id, term) DO UPDATE SET chunks = keyword_terms.chunks + EXCLUDED.chunks;
    UPDATE knowledge_bases k SET chunk_count = k.chunk_count + s.chunks, keyword_length_total = k.keyword_length_total + s.length
    FROM (SELECT knowledge_base_id, count(*) AS chunks, sum(keyword_length) AS length FROM added GROUP BY knowledge_base_id) s
    WHERE k.id = s.knowledge_base_id;
    RETURN NULL;
END $$;

CREATE FUNCTION keyword_terms_remove() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM keyword_postings p
    USING (SELECT o.knowledge_base_id, t.term, o.id FROM removed o, unnest(tsvector_to_array(o.keywords)) AS t(term)) r
    WHERE p.knowledge_base_id = r.knowledge_base_id AND p.term = r.term AND p.chunk_id = r.id;
    UPDATE keyword_terms k SET chunks = k.chunks - s.chunks
    FROM (
        SELECT o.knowledge_base_id, t.term, count(*) AS chunks
        FROM removed o, unnest(tsvector_to_array(o.keywords)) AS t(term)
        GROUP BY o.knowledge_base_id, t.term
        ORDER BY o.knowledge_base_id, t.term
    ) s
    WHERE k.knowledge_base_id = s.knowledge_base_id AND k.term = s.term;
    DELETE FROM keyword_terms k USING (SELECT DISTINCT knowledge_base_id FROM removed) r
    WHERE k.knowledge_base_id = r.knowledge_base_id AND k.chunks <= 0;
    UPDATE knowledge_bases k SET chunk_count = k.chunk_count - s.chunks, keyword_length_total = k.keyword_length_total - s.length
    FROM (SELECT knowledge_base_id, count(*) AS chunks, sum(keyword_length) AS length FROM removed GROUP BY knowledge_base_id) s
    WHERE k.id = s.knowledge_base_id;
    RETURN NULL;
END $$;

CREATE TRIGGER document_chunks_added AFTER INSERT ON document_chunks
    REFERENCING NEW TABLE AS added FOR EACH STATEMENT EXECUTE FUNCTION keyword_terms_add();
CREATE TRIGGER document_chunks_removed AFTER DELETE ON document_chunks
    REFERENCING OLD TABLE AS removed FOR EACH STATEMENT EXECUTE FUNCTION keyword_terms_remove();

-- Embeddings by (model, SHA-256 of the text): re-indexing and unchanged chunks are never
-- embedded twice. used_at lets old entries be pruned.
CREATE TABLE embedding_cache (
    model VARCHAR(255) NOT NULL,
    text_hash CHAR(64) NOT NULL,
    embedding vector NOT NULL,
    used_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT NOW(),
    PRIMARY KEY (model, text_hash)
);
