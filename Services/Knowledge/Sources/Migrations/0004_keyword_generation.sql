-- A knowledge base's keyword generation: the statements that add or remove its chunks bump it (the
-- triggers of 0002, in the same transaction), so a search that reads it together with the keyword
-- statistics knows exactly which state of the postings it sees. The service keeps postings it has
-- read in memory by (knowledge base, generation, term), and a new generation is never served from
-- an older one's (PostingsCache).
ALTER TABLE knowledge_bases ADD COLUMN keyword_generation BIGINT NOT NULL DEFAULT 0;

CREATE OR REPLACE FUNCTION keyword_terms_add() RETURNS trigger LANGUAGE plpgsql AS $$
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
    UPDATE knowledge_bases k SET chunk_count = k.chunk_count + s.chunks, keyword_length_total = k.keyword_length_total + s.length,
        keyword_generation = k.keyword_generation + 1
    FROM (SELECT knowledge_base_id, count(*) AS chunks, sum(keyword_length) AS length FROM added GROUP BY knowledge_base_id) s
    WHERE k.id = s.knowledge_base_id;
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION keyword_terms_remove() RETURNS trigger LANGUAGE plpgsql AS $$
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
    UPDATE knowledge_bases k SET chunk_count = k.chunk_count - s.chunks, keyword_length_total = k.keyword_length_total - s.length,
        keyword_generation = k.keyword_generation + 1
    FROM (SELECT knowledge_base_id, count(*) AS chunks, sum(keyword_length) AS length FROM removed GROUP BY knowledge_base_id) s
    WHERE k.id = s.knowledge_base_id;
    RETURN NULL;
END $$;
