#!/usr/bin/env bash
# Runs Paddock's main job on embedded defaults: a local Kubernetes control plane (built from Go modules on first
# use), PostgreSQL 18 + pgvector, and the operator under the chart's RBAC. The example manifests then become a
# serving, charging tenant:
#   Tenant acme (Ready) → ToolServer docs (Verified) → documents loaded through its MCP endpoint →
#   AgentTask erasure-question (completed, with its cost) → a status table, a token and working command lines.
#
#   scripts/demo.sh                  # stays up until Ctrl-C, then tears everything down
#   scripts/demo.sh --exit           # tears everything down right after the summary (the test command runs this)
#   scripts/demo.sh --runtime-only [--port PORT] [--metrics-port PORT]
#                                    # paddock-runtime alone, without Kubernetes (scripts/runtime-demo.sh)
#
# The first run builds Kubernetes from source, which takes 10 to 25 minutes on two cores; later runs reuse it.
# kwok's pods run nothing, so the runtimes of the ToolServer's pods run on this machine with exactly the
# configuration the operator rendered, and answer at the ToolServer's in-cluster URL through a local proxy.
# PADDOCK_DEMO_NAME (default: demo) names the cluster and the data, so two demos can run side by side;
# PADDOCK_BIN_DIR names a directory holding the four programs already built, which skips the build.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$PADDOCK_REPO_ROOT"

EXIT_AFTER_SUMMARY=0
case "${1:-}" in
    --runtime-only) shift; exec scripts/runtime-demo.sh "$@" ;;
    --exit) EXIT_AFTER_SUMMARY=1 ;;
    "") ;;
    -h | --help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument: $1 (see --help)" ;;
esac
require_cmd cargo go openssl curl python3

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PADDOCK_CACHE/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
NAME="${PADDOCK_DEMO_NAME:-demo}"
[[ $NAME =~ ^[a-z0-9][a-z0-9-]*$ ]] || die "PADDOCK_DEMO_NAME must be lowercase letters, digits and dashes"
DEMO="$PADDOCK_CACHE/demos/$NAME"
PG_DATA="$PADDOCK_CACHE/demos/pgdata-$NAME"
LOCAL_PID_FILE="$DEMO/paddock-local.pid"
NAMESPACE=acme
TENANT=acme
TOOLSERVER=docs
TASK=erasure-question
SCOPES="documents:read documents:write tasks:run usage:read"

# Progress: each phase is announced with the time since the start, and a phase that takes long says so every
# 30 seconds, so a first run's Kubernetes build is never minutes of silence.
START=$SECONDS
PHASES=9
PHASE_NO=0
PHASE_FILE="$(mktemp)"
phase() {
    PHASE_NO=$((PHASE_NO + 1))
    printf '%s' "$*" >"$PHASE_FILE"
    log "==> [$PHASE_NO/$PHASES] $* (+$((SECONDS - START))s)"
}
(
    trap 'exit 0' TERM
    while sleep 30; do
        [[ -f $PHASE_FILE ]] || exit 0
        log "    ... still $(cat "$PHASE_FILE") (+$((SECONDS - START))s)"
    done
) &
HEARTBEAT_PID=$!

# Teardown, on success, failure and Ctrl-C alike: nothing is left running, and nothing is left that would get in
# the next run's way.
CLUSTER_UP=0
PG_UP=0
cleanup() {
    local rc=$?
    trap '' INT TERM
    kill "$HEARTBEAT_PID" 2>/dev/null || true
    rm -f "$PHASE_FILE"
    log "tearing down (+$((SECONDS - START))s)"
    stop_local
    if ((CLUSTER_UP)); then
        e2e/controlplane/down.sh "$NAME" >/dev/null 2>&1 || log "warning: e2e/controlplane/down.sh $NAME failed"
    fi
    if ((PG_UP)); then
        scripts/postgres.sh stop --data "$PG_DATA" >/dev/null 2>&1 || log "warning: PostgreSQL did not stop"
    fi
    if ((rc != 0 && rc != 130)); then
        log "failed; the operator's and the runtimes' logs are in $DEMO/run"
    elif ((EXIT_AFTER_SUMMARY)); then
        # A run that ends by itself leaves nothing behind: its PostgreSQL data (which, run as root, lives where
        # the server's user can reach it, linked from PG_DATA) and its files.
        rm -rf "$(realpath -m "$PG_DATA")" "$PG_DATA" "$PG_DATA.lock" "$DEMO"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# stop_local: ends paddock-local (the operator and the runtimes) with SIGTERM, which drops its database too. A
# pid file left by a run that was killed outright names a process only while it still runs paddock-local.
stop_local() {
    local pid
    [[ -f $LOCAL_PID_FILE ]] || return 0
    pid="$(<"$LOCAL_PID_FILE")"
    if [[ $pid =~ ^[0-9]+$ ]] && [[ "$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null)" == *paddock-local* ]]; then
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 600); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$LOCAL_PID_FILE"
}

mkdir -p "$DEMO"
if [[ -f $LOCAL_PID_FILE || -d "$PADDOCK_CACHE/cluster/$NAME" ]]; then
    log "a previous run of this demo left state behind; removing it"
    stop_local
    e2e/controlplane/down.sh "$NAME" >/dev/null 2>&1 || true
fi
rm -rf "$DEMO/run"

phase "Kubernetes control plane binaries"
if ! e2e/controlplane/build.sh --check >/dev/null 2>&1; then
    log "First run: building Kubernetes (etcd, kube-apiserver, controller-manager, scheduler, kubectl, kwok) from"
    log "Go modules. This takes 10 to 25 minutes on two cores, once; the binaries are cached for later runs."
fi
e2e/controlplane/build.sh >/dev/null

phase "helm, which renders the chart's RBAC"
eval "$(e2e/tools/build.sh)"

phase "cluster $NAME"
CLUSTER_UP=1
eval "$(e2e/controlplane/up.sh "$NAME")"
export KUBECONFIG KUBECACHEDIR PATH

phase "PostgreSQL"
PG_UP=1
eval "$(scripts/postgres.sh start --data "$PG_DATA")"
export DATABASE_URL

phase "building paddock-operator, paddock-runtime, kubectl-paddock and paddock-local"
# PADDOCK_BIN_DIR names a directory where the four are built already (the test command passes its own).
if [[ -z ${PADDOCK_BIN_DIR:-} ]]; then
    cargo build --locked -p paddock-operator -p paddock-runtime -p kubectl-paddock -p paddock-e2e --bins >&2
fi
BUILT="${PADDOCK_BIN_DIR:-$CARGO_TARGET_DIR/debug}"
# Links in a directory of the demo's own: kubectl finds the plugin on PATH, and nothing else of the build is there.
mkdir -p "$DEMO/bin"
for bin in paddock-operator paddock-runtime kubectl-paddock paddock-local; do
    [[ -x "$BUILT/$bin" ]] || die "no $bin in $BUILT"
    ln -sf "$BUILT/$bin" "$DEMO/bin/$bin"
done
export PATH="$DEMO/bin:$PATH"
export PADDOCK_OPERATOR_BIN="$DEMO/bin/paddock-operator"
export PADDOCK_RUNTIME_BIN="$DEMO/bin/paddock-runtime"
export HELM

phase "the operator, as the chart's ServiceAccount"
kubectl apply --server-side -f crds/tenant.yaml -f crds/toolserver.yaml -f crds/agenttask.yaml -f crds/postgrescluster.yaml >/dev/null
kubectl wait --for=condition=Established --timeout=60s \
    crd/tenants.paddock.dev crd/toolservers.paddock.dev crd/agenttasks.paddock.dev crd/postgresclusters.paddock.dev >/dev/null
mkdir -p "$DEMO/run"
PADDOCK_E2E_WORK_DIR="$DEMO/run" paddock-local >"$DEMO/paddock-local.out" 2>"$DEMO/run/paddock-local.log" &
echo $! >"$LOCAL_PID_FILE"
PROXY=""
for _ in $(seq 1200); do
    PROXY="$(sed -n 's/^export HTTP_PROXY=\([^ ]*\).*/\1/p' "$DEMO/paddock-local.out")"
    [[ -n $PROXY ]] && break
    kill -0 "$(<"$LOCAL_PID_FILE")" 2>/dev/null || { tail -n 20 "$DEMO/run/paddock-local.log" >&2; die "paddock-local exited"; }
    sleep 0.1
done
[[ -n $PROXY ]] || die "paddock-local did not come up in 120 s; see $DEMO/run/paddock-local.log"

phase "Tenant $TENANT and ToolServer $TOOLSERVER"
kubectl create namespace "$NAMESPACE" >/dev/null
kubectl apply -f examples/tenant.yaml >/dev/null
kubectl wait --for=condition=Ready --timeout=120s "tenant/$TENANT" >/dev/null
kubectl apply -f examples/toolserver.yaml >/dev/null
kubectl wait -n "$NAMESPACE" --for=condition=Verified --timeout=180s "toolserver/$TOOLSERVER" >/dev/null
URL="$(kubectl get -n "$NAMESPACE" "toolserver/$TOOLSERVER" -o jsonpath='{.status.url}')"

phase "documents, through the ToolServer's MCP endpoint"
# A token from the operator's development issuer, for the tenant's ToolServer.
TOKEN="$(kubectl paddock token "$TENANT" --scope "$SCOPES" --user demo-user --ttl 24h)"
HTTP_PROXY="$PROXY" "$PADDOCK_RUNTIME_BIN" ingest --url "$URL/mcp" --token "$TOKEN" --file examples/documents.jsonl
# The search the summary prints, run once here, so a demo that prints a broken line fails instead.
SID="$(curl -fsSi -x "$PROXY" "$URL/mcp" -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
    -d '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"demo","version":"1"}}}' \
    | tr -d '\r' | sed -n 's/^[Mm]cp-[Ss]ession-[Ii]d: //p')"
[[ -n $SID ]] || die "the ToolServer opened no MCP session"
SEARCH="$(curl -fsS -x "$PROXY" "$URL/mcp" -H "Authorization: Bearer $TOKEN" -H "Mcp-Session-Id: $SID" \
    -H 'MCP-Protocol-Version: 2025-11-25' -H 'Content-Type: application/json' \
    -d '{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"hybrid_search","arguments":{"query":"right to be forgotten","limit":3}}}')"
grep -q '"hits"' <<<"$SEARCH" && ! grep -q '"isError":true' <<<"$SEARCH" \
    || die "hybrid_search through the ToolServer failed: $SEARCH"

phase "AgentTask $TASK"
kubectl apply -f examples/agenttask.yaml >/dev/null
kubectl wait -n "$NAMESPACE" --for=jsonpath='{.status.state}'=completed --timeout=300s "agenttask/$TASK" >/dev/null
# The tenant's status shows the task's cost once the operator has read the ledger again (it watches the tasks).
for _ in $(seq 60); do
    [[ "$(kubectl get "tenant/$TENANT" -o jsonpath='{.status.spend.amount}')" =~ [1-9] ]] && break
    sleep 0.5
done

# The console's sign-in link: a single-use code in the fragment (never sent to a server), no token in any URL.
CODE="$(curl -fsS -x "$PROXY" -X POST "$URL/console/api/handover" -H "Authorization: Bearer $TOKEN" \
    -H 'Content-Type: application/json' -d '{}' | sed -n 's/.*"code":"\([A-Za-z0-9_-]*\)".*/\1/p')"
[[ -n $CODE ]] || die "the ToolServer handed over no console sign-in code"

cat <<INFO

Paddock is running on a local Kubernetes control plane (ready in $((SECONDS - START)) s):

$(kubectl get tenants,toolservers,agenttasks -A)

$(kubectl paddock status)

In another shell:

  export KUBECONFIG='$KUBECONFIG' PATH='$DEMO/bin:$(dirname "$(command -v kubectl)")':"\$PATH"
  export TOKEN='$TOKEN'     # tenant $TENANT, user demo-user, scopes: $SCOPES

  # the tenant's database role, spend and conditions; the runtime the operator renders; the task's cost
  kubectl get tenant $TENANT -o yaml
  kubectl get toolserver,deployment,pods -n $NAMESPACE
  kubectl get agenttask $TASK -n $NAMESPACE -o yaml

  # kubectl paddock: spend against budget, another token, the task's A2A progress, the usage ledger
  kubectl paddock status
  kubectl paddock token $TENANT --scope documents:read
  HTTP_PROXY=$PROXY kubectl paddock logs $TASK -n $NAMESPACE
  HTTP_PROXY=$PROXY kubectl paddock usage $TENANT --by model

  # The console, signed in (through the proxy $PROXY; the link works once, within two minutes):
  # $URL/console/#code=$CODE
  # A fresh link: POST $URL/console/api/handover with the token, then open $URL/console/#code=<code>

  # The ToolServer answers at its in-cluster URL $URL through a local proxy ($PROXY):
  # open an MCP session (the answer's Mcp-Session-Id header names it) ...
  curl -si -x $PROXY $URL/mcp -H "Authorization: Bearer \$TOKEN" -H 'Content-Type: application/json' \\
    -d '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"curl","version":"1"}}}'
  # ... and search (put the session id in SID)
  curl -s -x $PROXY $URL/mcp -H "Authorization: Bearer \$TOKEN" -H "Mcp-Session-Id: \$SID" \\
    -H 'MCP-Protocol-Version: 2025-11-25' -H 'Content-Type: application/json' \\
    -d '{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"hybrid_search","arguments":{"query":"right to be forgotten","limit":3}}}'

  # another agent run, charged to the tenant's budget
  sed 's/^  name: $TASK/  generateName: question-/' examples/agenttask.yaml | kubectl create -f -

Operator and runtime logs: $DEMO/run
INFO

if ((EXIT_AFTER_SUMMARY)); then
    exit 0
fi
log "Ctrl-C tears everything down"
wait "$(<"$LOCAL_PID_FILE")"
