// SQLite (Debian libsqlite3-dev), for registered SQLite databases: the C API itself, because the
// guard needs what sqlite-nio does not expose (sqlite3_stmt_readonly, a progress handler, the
// authorizer's return codes, column origins, per-connection limits).
#include <sqlite3.h>

// sqlite3_db_config is variadic, which Swift cannot call.
static inline int platform_sqlite3_harden(sqlite3 *db) {
  int rc = 0;
  rc |= sqlite3_db_config(db, SQLITE_DBCONFIG_ENABLE_LOAD_EXTENSION, 0, (int *)0);
  rc |= sqlite3_db_config(db, SQLITE_DBCONFIG_DEFENSIVE, 1, (int *)0);
  rc |= sqlite3_db_config(db, SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0, (int *)0);
  rc |= sqlite3_db_config(db, SQLITE_DBCONFIG_ENABLE_TRIGGER, 0, (int *)0);
  rc |= sqlite3_db_config(db, SQLITE_DBCONFIG_ENABLE_VIEW, 1, (int *)0);
  return rc;
}
