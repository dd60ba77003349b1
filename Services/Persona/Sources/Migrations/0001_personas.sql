-- Persona database (seed 002 §2.2): persona templates and their validation records, plus what
-- the contract adds: optimistic-concurrency versions, idempotent creates, per-user ratings.

CREATE TABLE personas (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id UUID NOT NULL, -- References agent_db.users
    name VARCHAR(100) NOT NULL,
    description TEXT,
    template TEXT NOT NULL,
    variables JSONB NOT NULL DEFAULT '{}'::jsonb,
    is_public BOOLEAN NOT NULL DEFAULT false,
    usage_count INTEGER NOT NULL DEFAULT 0,
    rating DECIMAL(3, 2),
    rating_count INTEGER NOT NULL DEFAULT 0,
    version INTEGER NOT NULL DEFAULT 1,
    request_id UUID,
    created_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT NOW(),
    updated_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT NOW(),
    deleted_at TIMESTAMP WITH TIME ZONE,

    CONSTRAINT chk_personas_name CHECK (char_length(name) BETWEEN 1 AND 100),
    CONSTRAINT chk_personas_rating CHECK (rating IS NULL OR rating BETWEEN 1 AND 5),
    CONSTRAINT chk_personas_variables_object CHECK (jsonb_typeof(variables) = 'object')
);

-- Indexes (seed)
CREATE INDEX idx_personas_user_id ON personas(user_id);
CREATE INDEX idx_personas_is_public ON personas(is_public) WHERE is_public = true;
CREATE INDEX idx_personas_usage_count ON personas(usage_count DESC);
CREATE INDEX idx_personas_rating ON personas(rating DESC NULLS LAST);

-- Full-text search (seed), and the combined document ListPersonas searches
CREATE INDEX idx_personas_name_fts ON personas USING GIN (to_tsvector('english', name));
CREATE INDEX idx_personas_description_fts ON personas USING GIN (to_tsvector('english', description));
CREATE INDEX idx_personas_search_fts ON personas USING GIN (
    to_tsvector('english', name || ' ' || coalesce(description, '') || ' ' || template)
);

-- GIN index for variables (seed)
CREATE INDEX idx_personas_variables ON personas USING GIN (variables);

-- A retried create with the same request id finds the persona the first attempt made.
CREATE UNIQUE INDEX idx_personas_request_id ON personas(user_id, request_id) WHERE request_id IS NOT NULL;

COMMENT ON TABLE personas IS 'Persona templates for agents';
COMMENT ON COLUMN personas.template IS 'Mustache template string';
COMMENT ON COLUMN personas.variables IS 'JSON schema for template variables';

-- One rating per user and persona; personas.rating is their average.
CREATE TABLE persona_ratings (
    persona_id UUID NOT NULL REFERENCES personas(id) ON DELETE CASCADE,
    user_id UUID NOT NULL,
    score SMALLINT NOT NULL CHECK (score BETWEEN 1 AND 5),
    rated_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT NOW(),
    PRIMARY KEY (persona_id, user_id)
);

CREATE TABLE persona_validations (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    persona_id UUID NOT NULL REFERENCES personas(id) ON DELETE CASCADE,
    persona_version INTEGER NOT NULL,
    validator VARCHAR(50) NOT NULL,
    validation_result JSONB NOT NULL,
    is_valid BOOLEAN NOT NULL,
    issues TEXT[],
    validated_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT NOW(),

    CONSTRAINT chk_validator CHECK (validator IN ('gpt4_judge', 'template_syntax', 'variable_schema'))
);

-- Indexes (seed)
CREATE INDEX idx_persona_validations_persona_id ON persona_validations(persona_id);
CREATE INDEX idx_persona_validations_is_valid ON persona_validations(is_valid);
-- Newest-first listing per persona
CREATE INDEX idx_persona_validations_listing ON persona_validations(persona_id, validated_at DESC, id DESC);

COMMENT ON TABLE persona_validations IS 'Persona validation results (template syntax, variable schema, LLM judge)';
