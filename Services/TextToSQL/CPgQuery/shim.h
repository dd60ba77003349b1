// libpg_query (Debian libpg-query-dev): PostgreSQL 15's own parser as a library.
#include <pg_query.h>
