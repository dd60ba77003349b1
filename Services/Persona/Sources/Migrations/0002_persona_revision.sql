-- A counter bumped by every change to a persona (update, rating, delete): the version its
-- cached copy (persona:{id} in Redis) is guarded by, so an older copy never replaces a newer
-- one. Not the API's `version`, which only updates bump.
ALTER TABLE personas ADD COLUMN revision BIGINT NOT NULL DEFAULT 1;
