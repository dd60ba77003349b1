#!/usr/bin/env bash
# The project's test command: starts the local PostgreSQL + Redis (installing them when
# missing), builds everything, runs the Swift test suites (unit; integration over real loopback
# sockets against real PostgreSQL; TLS; hostile input), the interop matrix against independent
# gRPC implementations (Python grpcio, grpc-go, a C client on libnghttp2), the persona service
# from C and Python clients, a backup restored (scripts/restore-test.sh), and checks that the
# generated code is up to date.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n=== %s\n' "$*"; }

step "packages (Debian, PyPI): what the build, the services and the tests need"
scripts/install-deps.sh

step "local PostgreSQL and Redis"
scripts/local-services.sh up
# The suites find them here (PGPORT / REDIS_PORT move them).
export TEST_DATABASE_URL="${TEST_DATABASE_URL:-postgres://platform:${PGPASSWORD:-platform}@127.0.0.1:${PGPORT:-5432}/postgres}"
export TEST_REDIS_URL="${TEST_REDIS_URL:-redis://127.0.0.1:${REDIS_PORT:-6379}}"

step "build"
swift build --build-tests

step "swift test"
# The suites take under a minute; a hang fails the run here instead of using up CI's time (and
# the test process, which `timeout` does not reach through swift test, goes with it). They run one
# at a time: run all at once on 2 CPUs, the process sometimes stopped making progress (every
# task suspended, no thread running) a few seconds in; see the README's note.
if ! timeout --kill-after=30 900 swift test --skip-build --no-parallel; then
  pkill -KILL -f 'platformPackageTests.xctest' || true
  exit 1
fi

step "hostile input (malformed HTTP/2 and gRPC, floods, fuzzing, slow readers)"
/usr/bin/python3 Tests/Hostile/hostile_test.py --server-bin "$(swift build --show-bin-path)/rpc-interop"

step "connections and calls cost no memory once closed (server: 20,000 connections; client: 5,000 reconnects, 20,000 calls)"
/usr/bin/python3 Tests/Hostile/connection_memory_test.py --server-bin "$(swift build --show-bin-path)/rpc-interop"

step "interop matrix"
scripts/interop.sh "$(swift build --show-bin-path)/rpc-interop"

step "persona service from C (libprotobuf-c) and Python (grpcio) clients"
scripts/persona-interop.sh "$(swift build --show-bin-path)/persona"

step "identity from outside: hostile credentials against agent and persona; Login answers a wrong password and an unknown email alike, in the same time"
# The hostile suite takes about 70 s; the timing check 200 tries of each, as the issue asks: 100
# accounts, then 400 Logins at about 0.86 s each in a debug build (scrypt at full cost), about
# 7 minutes (12 with a build sharing the CPUs); README: measurement.
scripts/agent-hostile.sh "$(swift build --show-bin-path)/agent"

step "agent crash safety: killed with SIGKILL mid-execution, the job resumes it to COMPLETED and the sweep fails the sync one as interrupted"
# About 2 minutes: the job's 30 s lease, then the sweep's minute.
scripts/agent-crash.sh "$(swift build --show-bin-path)/agent"

step "workflow crash safety: killed with SIGKILL mid-run, each run goes on from its committed nodes; no completed node's request is sent twice"
scripts/workflow-crash.sh "$(swift build --show-bin-path)/workflow"

step "the platform CLI against the real platform: accounts, every command group, --json, exit codes"
# About 20 s: its own databases, state directory and ports 28051-28056.
scripts/cli-test.sh "$(swift build --show-bin-path)"

step "one trace through an agent execution: persona, knowledge, text-to-SQL and the sandbox, checked at an OTLP receiver"
scripts/agent-trace.sh "$(swift build --show-bin-path)/agent"

step "code-sandbox escapes: network, files, /proc, resources, processes, privileges; nothing left behind"
scripts/sandbox-escape.sh "$(swift build --show-bin-path)/code-sandbox"

step "platform.sh supervision (restarts after a crash, nothing after down)"
scripts/test-supervision.sh "$(swift build --show-bin-path)/persona"

step "backups: backup.sh and restore.sh bring a database back table for table, refuse a corrupted dump, and a failed restore changes nothing"
# About 3 s, on a scratch database of its own.
scripts/restore-test.sh

step "platform-load measures a known fixed delay and a known stall (latency from the intended send time)"
"$(swift build --show-bin-path)/platform-load" self-test

step "containers and Kubernetes: docker-compose config, kubectl kustomize, and their structural checks against the code"
scripts/check-deploy.sh

step "generated code is up to date"
scripts/check-generated.sh
