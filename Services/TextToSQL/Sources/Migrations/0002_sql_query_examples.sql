-- The examples AskQuestion gives the model: the caller's latest 100 questions that ran safely on
-- that database, ranked against the new question.
--
-- Found through this index alone, they cost the same however many rows other users have. Its
-- order is by `created_at AT TIME ZONE 'UTC'` (the same order as created_at) so that no other
-- index can give the query its order: with created_at itself, the planner walked the global
-- idx_sql_queries_created_at newest first and skipped every other user's newer rows (7,000 of
-- them, 3-8 ms a question, in a table of 13,000 rows with four users), because it takes a user's
-- rows to be spread evenly over time.
CREATE INDEX idx_sql_queries_examples ON sql_queries (user_id, database_id, (created_at AT TIME ZONE 'UTC') DESC)
    WHERE executed AND is_safe AND natural_language <> '';

-- Each question's text search vector, made once when the question is written, rather than again
-- for each of the 100 every time a new question is ranked against them.
ALTER TABLE sql_queries
    ADD COLUMN natural_language_tsv tsvector GENERATED ALWAYS AS (to_tsvector('english', natural_language)) STORED;
