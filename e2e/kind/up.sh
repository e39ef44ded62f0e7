#!/usr/bin/env bash
# Runs Paddock's end-to-end scenarios on kind, where the operator and the runtimes run as real
# pods from real images. Needs Docker, kind, helm, kubectl and cargo; it cannot run on machines
# without a Docker engine (use scripts/e2e.sh there).
#
#   e2e/kind/up.sh            # create the cluster, build and load images, install, test, delete
#   e2e/kind/up.sh --keep     # leave the cluster running afterwards
#
# Steps:
#   1. kind create cluster (e2e/kind/cluster.yaml);
#   2. docker build of operator/Dockerfile and runtime/Dockerfile, kind load docker-image;
#   3. PostgreSQL with pgvector in paddock-system (e2e/kind/postgres.yaml) and the
#      paddock-database Secret the chart reads;
#   4. helm install of charts/paddock with the freshly built images;
#   5. cargo test -p paddock-e2e --test scenarios with PADDOCK_E2E_MODE=in-cluster: the harness
#      then starts no operator or runtime of its own, reaches ToolServers through
#      `kubectl port-forward`, and checks the database through a port-forward to PostgreSQL.
# The recovery scenarios kill local processes and restart the local PostgreSQL, so they run
# in the local mode only (scripts/e2e.sh).
set -euo pipefail

# shellcheck source=../../scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../../scripts/lib.sh"
PADDOCK_LOG_TAG=kind

here=$(cd "$(dirname "$0")" && pwd)
repo=$(git -C "$here" rev-parse --show-toplevel 2>/dev/null || (cd "$here/../.." && pwd))
cd "$repo"


keep=0
case ${1:-} in
  --keep) keep=1 ;;
  "") ;;
  -h | --help) sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
  *) die "unknown argument $1" ;;
esac

for cmd in docker kind helm kubectl cargo; do
  command -v "$cmd" >/dev/null || die "$cmd is not on PATH"
done
docker info >/dev/null 2>&1 || die "no Docker engine is reachable; this path needs one (scripts/e2e.sh runs without)"

name=paddock-e2e
tag=e2e-$(git rev-parse --short HEAD 2>/dev/null || echo dev)
work=$(mktemp -d)
export KUBECONFIG=$work/kubeconfig
pf_pid=

cleanup() {
  [[ -n $pf_pid ]] && kill "$pf_pid" 2>/dev/null || true
  if [[ $keep == 1 ]]; then
    log "kept: kind cluster $name (KUBECONFIG=$KUBECONFIG); delete with: kind delete cluster --name $name"
  else
    kind delete cluster --name "$name" >/dev/null 2>&1 || true
    rm -rf "$work"
  fi
}
trap cleanup EXIT

log "creating kind cluster $name"
kind create cluster --name "$name" --config "$here/cluster.yaml" --kubeconfig "$KUBECONFIG" --wait 120s

log "building images ($tag)"
docker build -f operator/Dockerfile -t "paddock/paddock-operator:$tag" .
docker build -f runtime/Dockerfile -t "paddock/paddock-runtime:$tag" .
kind load docker-image --name "$name" "paddock/paddock-operator:$tag" "paddock/paddock-runtime:$tag"

log "PostgreSQL"
kubectl create namespace paddock-system
kubectl apply -f "$here/postgres.yaml"
kubectl -n paddock-system rollout status deployment/postgres --timeout=180s

log "helm install"
helm install paddock charts/paddock --namespace paddock-system \
  --set image.repository=paddock/paddock-operator --set image.tag="$tag" --set image.pullPolicy=Never \
  --set runtimeImage.repository=paddock/paddock-runtime --set runtimeImage.tag="$tag" \
  --set log.format=text --wait --timeout 180s

# The scenarios check the database directly (roles, rows), as the local suite does.
pg_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
kubectl -n paddock-system port-forward svc/postgres "$pg_port:5432" >"$work/pg-forward.log" 2>&1 &
pf_pid=$!
for _ in $(seq 50); do (exec 3<>"/dev/tcp/127.0.0.1/$pg_port") 2>/dev/null && break; sleep 0.2; done

log "scenarios"
# The walk-through scenario runs `paddock-runtime token` and `ingest` as a user would.
cargo build --locked -p paddock-runtime --bin paddock-runtime
export PADDOCK_RUNTIME_BIN=${CARGO_TARGET_DIR:-$repo/target}/debug/paddock-runtime
export PADDOCK_E2E_MODE=in-cluster
export PADDOCK_E2E_DATABASE_URL=postgres://postgres:paddock-e2e@127.0.0.1:$pg_port/paddock
export PADDOCK_E2E_WORK_DIR=$work/run
status=0
cargo test --locked -p paddock-e2e --test scenarios -- --include-ignored || status=$?
if [[ $status != 0 ]]; then
  kubectl -n paddock-system logs deployment/paddock --tail=200 || true
fi
exit "$status"
