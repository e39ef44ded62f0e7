#!/usr/bin/env bash
# Runs Paddock's end-to-end suite on a local Kubernetes control plane built from source
# (e2e/controlplane), with a local PostgreSQL, and tears everything down afterwards.
#
#   scripts/e2e.sh                    # chart checks + every scenario
#   scripts/e2e.sh tenant_lifecycle   # only scenarios whose name contains this
#   scripts/e2e.sh --skip two_tenants # all but the tests whose name contains this
#   scripts/e2e.sh --keep             # leave the cluster, PostgreSQL and logs running/in place
#   scripts/e2e.sh --scale 10,100,1000 # the tenant-count benchmark instead of the suite (BENCHMARKS.md)
#
# Steps: build (or reuse) the control plane, helm, kubeconform, Prometheus and Jaeger; check the chart's dashboards
# and alerts (e2e/monitoring/check.sh, with promtool); start a cluster with a unique name;
# helm lint + helm template | kubeconform -strict; start a PostgreSQL of this
# run's own; build the workspace's binaries and tests; run the operator's cluster tests
# (cargo test -p paddock-operator --test cluster_* -- --ignored) and the scenario binaries of
# paddock-e2e against the cluster (scenarios, recovery, observability: traces in Jaeger and
# every dashboard panel in Prometheus). Logs of the run (operator, runtimes, control plane,
# PostgreSQL) are kept when something fails.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$PADDOCK_REPO_ROOT"

KEEP=0
# Tenant counts of the benchmark (paddock-scale), which then runs instead of the checks and the suite.
SCALE=""
# Test-name filters and --skip options, passed to every test binary as cargo test would.
FILTERS=()
while (($#)); do
    case "$1" in
        --keep) KEEP=1 ;;
        --scale)
            [[ $# -ge 2 && $2 =~ ^[0-9]+(,[0-9]+)*$ ]] || die "--scale needs tenant counts, e.g. 100,1000"
            SCALE="$2"
            shift
            ;;
        --skip)
            [[ $# -ge 2 && -n $2 ]] || die "--skip needs a test name"
            FILTERS+=(--skip "$2")
            shift
            ;;
        -h | --help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        -*) die "unknown option: $1" ;;
        *) FILTERS+=("$1") ;;
    esac
    shift
done

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PADDOCK_CACHE/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
START=$SECONDS
stage() { log "==> $* (+$((SECONDS - START))s)"; }

CLUSTER="e2e-$(date +%H%M%S)-$$"
RUN_DIR="$PADDOCK_CACHE/e2e-runs/$CLUSTER"
# A data directory per run: two runs at once (two checkouts) never share a server, and
# neither can stop the other's.
PG_DATA="$RUN_DIR/pgdata-$CLUSTER"
# A second server, for the scenario with tenants on two database clusters.
PG2_DATA="$RUN_DIR/pgdata2-$CLUSTER"
mkdir -p "$RUN_DIR"
CLUSTER_UP=0
PG_UP=0
PG2_UP=0
STATUS=1

# Kills processes the test binaries started and could not stop (a crashed binary): each pid
# file holds "<pid> <program>", and a pid is signalled only if it still runs that program.
kill_leftovers() {
    local f pid prog
    for f in "$RUN_DIR"/*/pids/*.pid; do
        [[ -f $f ]] || continue
        read -r pid prog <"$f" || continue
        if [[ -r /proc/$pid/cmdline ]] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$prog"; then
            log "stopping leftover process $pid ($prog)"
            kill -KILL "$pid" 2>/dev/null || true
        fi
        rm -f "$f"
    done
}

# remove_postgres DATA: stops one of this run's PostgreSQL servers and deletes its data. Run as
# root, scripts/postgres.sh keeps the data in a directory the server's user can reach and links
# it from DATA: both go.
remove_postgres() {
    local data="$1" real stem
    real="$(realpath -m "$data")"
    stem="$(basename "$data")"
    case "$(basename "$real")" in
        "$stem" | "$stem"-????????) ;;
        *) log "warning: not removing $real: not this run's data directory"; return ;;
    esac
    if ! scripts/postgres.sh stop --data "$data" >/dev/null 2>&1; then
        log "warning: PostgreSQL of $data did not stop; its data stays in $real"
        return
    fi
    if [[ $STATUS != 0 && -f $real/server.log ]]; then
        cp "$real/server.log" "$RUN_DIR/$stem.log" 2>/dev/null || true
    fi
    rm -rf "$real" "$real.lock" "$data" "$data.lock"
}

cleanup() {
    local rc=$?
    kill_leftovers
    if [[ $KEEP == 1 ]]; then
        log "kept: cluster $CLUSTER (e2e/controlplane/down.sh $CLUSTER), PostgreSQL (scripts/postgres.sh stop --data $PG_DATA and --data $PG2_DATA, then delete them), logs in $RUN_DIR"
        return
    fi
    if [[ $CLUSTER_UP == 1 ]]; then
        if [[ $STATUS != 0 ]]; then
            # Keep the control plane's logs with the run's own.
            cp -r "$PADDOCK_CACHE/cluster/$CLUSTER/logs" "$RUN_DIR/controlplane-logs" 2>/dev/null || true
        fi
        e2e/controlplane/down.sh "$CLUSTER" >/dev/null 2>&1 || log "warning: down.sh $CLUSTER failed"
    fi
    if [[ $PG_UP == 1 ]]; then
        remove_postgres "$PG_DATA"
    fi
    if [[ $PG2_UP == 1 ]]; then
        remove_postgres "$PG2_DATA"
    fi
    if [[ $STATUS == 0 && $rc == 0 ]]; then
        rm -rf "$RUN_DIR"
    else
        log "logs of this run: $RUN_DIR"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

stage "control plane binaries"
e2e/controlplane/build.sh >/dev/null

stage "helm, kubeconform, Prometheus and Jaeger"
eval "$(e2e/tools/build.sh helm kubeconform prometheus jaeger)"
export PROMETHEUS JAEGER

if [[ -z $SCALE ]]; then
    stage "chart: Argo CD health checks in Argo CD's Lua sandbox (e2e/argocd)"
    (cd e2e/argocd && GOFLAGS=-mod=readonly go test -count=1 ./...)

    stage "chart: dashboards and alerts against the exported metrics, promtool check and test rules (e2e/monitoring)"
    e2e/monitoring/check.sh
fi

stage "cluster $CLUSTER"
CLUSTER_UP=1
eval "$(e2e/controlplane/up.sh "$CLUSTER")"
export KUBECONFIG KUBECACHEDIR PATH

kubectl apply --server-side -f crds/tenant.yaml -f crds/toolserver.yaml -f crds/agenttask.yaml -f crds/postgrescluster.yaml >/dev/null
kubectl wait --for=condition=Established --timeout=60s \
    crd/tenants.paddock.dev crd/toolservers.paddock.dev crd/agenttasks.paddock.dev crd/postgresclusters.paddock.dev >/dev/null
if [[ -z $SCALE ]]; then
    stage "chart: helm lint, helm template | kubeconform -strict"
    "$HELM" lint --strict charts/paddock
    # The monitors, the dashboards' ConfigMaps and the PrometheusRule are off by default; render
    # them too, and skip only the Prometheus Operator's kinds (their CRDs belong to it, and this
    # cluster does not run it): e2e/monitoring/check.sh checks the PrometheusRule's rules with promtool.
    "$HELM" template paddock charts/paddock --namespace paddock-system --kube-version v1.34.4 --include-crds \
        | e2e/tools/kubeconform.sh -
    "$HELM" template paddock charts/paddock --namespace paddock-system --kube-version v1.34.4 \
        --set serviceMonitor.enabled=true --set replicas=2 \
        --set dashboards.enabled=true --set prometheusRule.enabled=true \
        | e2e/tools/kubeconform.sh -skip ServiceMonitor,PodMonitor,PrometheusRule -
    stage "examples: kubeconform -strict against the CRDs (Paddock's, and CloudNativePG's for its Cluster)"
    # Installed only so the apiserver publishes its schema: nothing in the run creates a Cluster.
    kubectl apply --server-side -f "$(e2e/tools/cnpg-crd.sh)" >/dev/null
    for _ in $(seq 120); do
        [[ $(kubectl get crd/clusters.postgresql.cnpg.io -o 'jsonpath={.status.conditions[?(@.type=="Established")].status}' 2>/dev/null) == True ]] && break
        sleep 0.5
    done
    e2e/tools/kubeconform.sh examples/
fi

stage "PostgreSQL, and a second server for the scenario with two database clusters"
PG2_UP=1
# On a port outside the ephemeral range: the scenario stops it and starts it again, and its cluster's DSN names
# that port.
PADDOCK_E2E_SECOND_DATABASE_URL="$(scripts/postgres.sh start --data "$PG2_DATA" --port "$(stable_port)" \
    | sed -n 's/^export DATABASE_URL=//p')"
[[ -n $PADDOCK_E2E_SECOND_DATABASE_URL ]] || die "the second PostgreSQL printed no DATABASE_URL"
export PADDOCK_E2E_SECOND_DATABASE_URL PADDOCK_E2E_SECOND_PG_DATA="$PG2_DATA"
PG_UP=1
eval "$(scripts/postgres.sh start --data "$PG_DATA")"
export DATABASE_URL

stage "build the binaries and the tests (what cargo test --workspace builds; nothing when it has)"
# Test binaries are run directly rather than through `cargo test`, so a build of another
# crate holding cargo's lock does not stall the run, and so each gets this run's environment.
declare -A BIN=() TEST_BIN=()
ARTIFACTS="$(workspace_artifacts)"
while IFS=$'\t' read -r kind name exe; do
    case "$kind" in
        bin) BIN[$name]=$exe ;;
        test) TEST_BIN[$name]=$exe ;;
    esac
done <<<"$ARTIFACTS"
# Hard links of this build: a build of another checkout that shares CARGO_TARGET_DIR replaces
# target/debug/<bin> (a new file), never these.
mkdir -p "$RUN_DIR/bin"
for bin in paddock-operator paddock-runtime kubectl-paddock; do
    [[ -n ${BIN[$bin]:-} ]] || die "cargo built no binary named $bin"
    ln -f "${BIN[$bin]}" "$RUN_DIR/bin/$bin" 2>/dev/null || cp -f "${BIN[$bin]}" "$RUN_DIR/bin/$bin"
done
for name in cluster_leader cluster_admission scenarios recovery observability; do
    [[ -n ${TEST_BIN[$name]:-} ]] || die "cargo built no test binary named $name"
done

export PADDOCK_OPERATOR_BIN="$RUN_DIR/bin/paddock-operator"
export PADDOCK_RUNTIME_BIN="$RUN_DIR/bin/paddock-runtime"
export PADDOCK_E2E_PG_DATA="$PG_DATA"
export PADDOCK_E2E_WORK_DIR="$RUN_DIR"
export PADDOCK_E2E_MODE=local

if [[ -n $SCALE ]]; then
    [[ -n ${BIN[paddock-scale]:-} ]] || die "cargo built no binary named paddock-scale"
    stage "the tenant-count benchmark: $SCALE Tenants"
    "${BIN[paddock-scale]}" "$SCALE"
    STATUS=0
    stage "benchmark done in $((SECONDS - START))s"
    exit 0
fi

FAILED=()
# The operator's tests that need a real API server (ignored in `cargo test`). They run before
# the scenarios install the chart: cluster_admission labels a namespace as an admin, which the
# chart's namespace-label policy rightly refuses, and installs crds/admission-policy.yaml itself.
for name in cluster_leader cluster_admission; do
    stage "operator cluster tests: $name"
    (cd operator && "${TEST_BIN[$name]}" --ignored "${FILTERS[@]}") || FAILED+=("$name")
done

# kubectl finds the plugin on PATH, as it would after `cargo install` or krew.
export PATH="$RUN_DIR/bin:$PATH"
# Shared-operator scenarios first, then the recovery ones (they start and kill their own), then
# the observability ones (each starts its own operator, with the environment it needs).
for name in scenarios recovery observability; do
    stage "scenarios: $name"
    "${TEST_BIN[$name]}" --include-ignored "${FILTERS[@]}" || FAILED+=("$name")
done
[[ ${#FAILED[@]} == 0 ]] || die "failed: ${FAILED[*]}"

STATUS=0
stage "end-to-end suite passed in $((SECONDS - START))s"
