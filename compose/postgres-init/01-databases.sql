-- One database per service, each with pgvector. Run once by the postgres image's entrypoint
-- (/docker-entrypoint-initdb.d) on an empty data directory, through psql as POSTGRES_USER
-- (platform, a superuser, so it owns the databases). The services apply their own migrations.
-- Keep the list in step with scripts/local-services.sh.

CREATE DATABASE agent_db ENCODING 'UTF8';
CREATE DATABASE persona_db ENCODING 'UTF8';
CREATE DATABASE code_db ENCODING 'UTF8';
CREATE DATABASE sql_db ENCODING 'UTF8';
CREATE DATABASE knowledge_db ENCODING 'UTF8';
CREATE DATABASE workflow_db ENCODING 'UTF8';

\connect agent_db
CREATE EXTENSION IF NOT EXISTS vector;
\connect persona_db
CREATE EXTENSION IF NOT EXISTS vector;
\connect code_db
CREATE EXTENSION IF NOT EXISTS vector;
\connect sql_db
CREATE EXTENSION IF NOT EXISTS vector;
\connect knowledge_db
CREATE EXTENSION IF NOT EXISTS vector;
\connect workflow_db
CREATE EXTENSION IF NOT EXISTS vector;
