#!/usr/bin/env bash
# Checks the containers (compose/) and the Kubernetes manifests (deploy/k8s/) without a Docker
# engine or a cluster: `docker-compose config` validates the compose file (and its observability
# profile), `kubectl kustomize` renders the base and the production overlay, and
# scripts/check_deploy.py checks what they render against the code (services = SwiftPM products,
# ports = the services' defaults, every variable read by the Swift sources) and structurally
# (gRPC probes, securityContext, Service/HPA/PDB, NetworkPolicies, the sandbox's exception).
# Installs nothing: scripts/install-deps.sh brings docker-compose, kubernetes-client (kubectl,
# unless one is already installed) and python3-yaml. KUBECTL=path picks another kubectl.
# Prints `deploy checks: N of M passed`; exits 1 when any check failed.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v docker-compose >/dev/null || missing+=("docker-compose (Debian package docker-compose)")
command -v "${KUBECTL:-kubectl}" >/dev/null || missing+=("kubectl (Debian package kubernetes-client)")
python3 -c 'import yaml' 2>/dev/null || missing+=("python3 yaml (Debian package python3-yaml)")
if ((${#missing[@]})); then
  printf 'check-deploy: missing %s; run scripts/install-deps.sh\n' "${missing[@]}" >&2
  exit 1
fi
# kustomize v5 warns about fields kept for kustomize v2 (Debian's kubectl 1.20); they are on purpose.
exec python3 scripts/check_deploy.py
