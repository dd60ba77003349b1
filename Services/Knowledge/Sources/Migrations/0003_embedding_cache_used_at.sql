-- The embedding cache is pruned of entries no lookup has used for EMBEDDING_CACHE_RETENTION_DAYS:
-- the sweep finds them by used_at.
CREATE INDEX idx_embedding_cache_used_at ON embedding_cache (used_at);
