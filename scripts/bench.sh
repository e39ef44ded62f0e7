#!/usr/bin/env bash
# The MCP hybrid_search benchmark: PostgreSQL up, the lab (paddock-lab, which drives the runtime in
# process) built in release mode, then `paddock-lab bench`, which loads 10 tenants × 10,000
# documents (once; the database is kept), drives tools/call hybrid_search over HTTP at concurrency
# 1, 8 and 32, and measures the same SQL under pgbench as the ceiling. The result table goes to stdout; see BENCHMARKS.md.
#
#   scripts/bench.sh                                # the recorded configuration
#   scripts/bench.sh -- --duration 5 --concurrency 8 # any `paddock-lab bench` options
#   scripts/bench.sh --db paddock_bench_1t -- --tenants 1   # another data set in its own database
#   scripts/bench.sh --local-model                  # queries embedded by all-MiniLM-L6-v2 in process:
#                                                   # raw model vs uncached and cached hybrid_search
#
# The benchmark cluster lives in $PADDOCK_CACHE/pgdata-bench (shared_buffers 1GB) and is stopped
# afterwards if this script started it. PADDOCK_LAB_BIN and PADDOCK_RUNTIME_BIN name already built
# binaries to use (the runtime's `migrate` checks the data set's migrations first).
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$PADDOCK_REPO_ROOT"

BENCH_ARGS=()
LOCAL_MODEL=""
DB=paddock_bench
while (($#)); do
    case "$1" in
        --db)
            [[ $# -ge 2 && "$2" =~ ^[a-z_][a-z0-9_]*$ ]] || die "--db takes a database name ([a-z0-9_])"
            DB="$2"
            shift 2
            ;;
        --local-model) LOCAL_MODEL=1; shift ;;
        --) shift; BENCH_ARGS=("$@"); break ;;
        -h | --help) sed -n '2,15p' "$0"; exit 0 ;;
        *) die "unknown argument: $1 (options for the benchmark go after --)" ;;
    esac
done

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PADDOCK_CACHE/target}"
PG_DATA="$PADDOCK_CACHE/pgdata-bench"
PG_STARTED=""
scripts/postgres.sh status --data "$PG_DATA" >/dev/null 2>&1 || PG_STARTED=1
cleanup() {
    if [[ -n "$PG_STARTED" ]]; then
        scripts/postgres.sh stop --data "$PG_DATA" >/dev/null 2>&1 || true
    fi
}
trap cleanup EXIT

log "starting PostgreSQL"
eval "$(scripts/postgres.sh start --data "$PG_DATA")"
PSQL=("$PADDOCK_PG_BIN/psql" -q -v ON_ERROR_STOP=1)
# The data set and its indexes (about 1 GB) should stay in PostgreSQL's own cache, as in a sized deployment.
if [[ "$("${PSQL[@]}" "$DATABASE_URL" -tAc "SHOW shared_buffers")" != 1GB ]]; then
    "${PSQL[@]}" "$DATABASE_URL" -c "ALTER SYSTEM SET shared_buffers = '1GB'"
    eval "$(scripts/postgres.sh restart --data "$PG_DATA")"
fi
if [[ -z "$("${PSQL[@]}" "$DATABASE_URL" -tAc "SELECT 1 FROM pg_database WHERE datname = '$DB'")" ]]; then
    "${PSQL[@]}" "$DATABASE_URL" -c "CREATE DATABASE $DB"
fi

if [[ -z "${PADDOCK_LAB_BIN:-}" || -z "${PADDOCK_RUNTIME_BIN:-}" ]]; then
    log "building paddock-lab and paddock-runtime (release)"
    cargo build --locked --release -p paddock-lab --bin paddock-lab -p paddock-runtime --bin paddock-runtime >&2
fi
BIN="${PADDOCK_RUNTIME_BIN:-$CARGO_TARGET_DIR/release/paddock-runtime}"
LAB_BIN="${PADDOCK_LAB_BIN:-$CARGO_TARGET_DIR/release/paddock-lab}"
[[ -x "$BIN" ]] || die "no paddock-runtime binary at $BIN"
[[ -x "$LAB_BIN" ]] || die "no paddock-lab binary at $LAB_BIN"

# The benchmark database is disposable (the data set is regenerated from its seed): when the migrations it was
# loaded under have changed since, start it afresh.
ADMIN_URL="postgres://postgres@127.0.0.1:$PADDOCK_PG_PORT/$DB"
if ! migrate_out="$("$BIN" migrate --database-url "$ADMIN_URL" 2>&1)"; then
    grep -q "previously applied but" <<<"$migrate_out" || die "migrations failed: $migrate_out"
    log "the migrations changed since $DB was loaded; recreating it"
    "${PSQL[@]}" "$DATABASE_URL" -c "DROP DATABASE $DB WITH (FORCE)" -c "CREATE DATABASE $DB"
fi

log "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo), \
$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1); PostgreSQL $("$PADDOCK_PG_BIN/postgres" --version | awk '{print $3}')"
MODEL_ARGS=()
if [[ -n "$LOCAL_MODEL" ]]; then
    MODEL_ARGS=(--embedding local --model-dir "$(scripts/model.sh)")
fi
"$LAB_BIN" bench --database-url "$ADMIN_URL" \
    --pg-bin "$PADDOCK_PG_BIN" "${MODEL_ARGS[@]}" "${BENCH_ARGS[@]}"
