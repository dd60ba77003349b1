-- The examples AskQuestion gives the model are the caller's latest 100 questions that ran safely
-- on that database. Found through this index alone (an index-only scan of the newest 100 ids),
-- they cost the same however many rows other users have. Without it the planner walked the
-- global created_at index newest first and skipped every other user's newer rows: 7,000 of them,
-- 3-5 ms a question, in a table of 13,000 rows with four users.
CREATE INDEX idx_sql_queries_examples ON sql_queries (user_id, database_id, created_at DESC, id)
    WHERE executed AND is_safe AND natural_language <> '';
