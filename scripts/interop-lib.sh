# shellcheck shell=bash
# Shared set-up of the interoperability scripts (interop.sh, a2a-interop.sh): sourced after lib.sh, in the
# repository root. Everything started or created here is removed on exit, whatever happens.
#
#   interop_begin NAME            work dir, PostgreSQL (started, or reused when DATABASE_URL is set), a fresh
#                                 database with the migrations applied, the runtime binary; sets WORK, PSQL,
#                                 ADMIN_URL (owner), RUNTIME_URL (paddock_runtime) and BIN
#   interop_embedding_yaml MODE   the runtime config's embedding line for `local` or `none`
#   interop_serve CONFIG URL      starts `paddock-runtime serve`, waits for URL/readyz; sets RUNTIME_PID
#   interop_track PID             stops another background process of the script on exit, before the runtime

interop_cleanup() {
    local rc=$? pid
    for pid in "${INTEROP_PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    if [[ -n "${RUNTIME_PID:-}" ]]; then
        kill "$RUNTIME_PID" 2>/dev/null || true
        wait "$RUNTIME_PID" 2>/dev/null || true
    fi
    if ((rc != 0)) && [[ -s "$WORK/runtime.log" ]]; then
        log "last lines of the runtime log:"
        # Backtrace frames say little here; the lines around them do.
        grep -v -E '^[[:space:]]+([0-9]+: |at )' "$WORK/runtime.log" | tail -n 40 >&2 || true
    fi
    if [[ -n "${DB_NAME:-}" ]]; then
        "$PADDOCK_PG_BIN/psql" -q "$SUPER_URL" -c "DROP DATABASE IF EXISTS $DB_NAME WITH (FORCE)" >/dev/null 2>&1 \
            || log "could not drop database $DB_NAME"
    fi
    if [[ -n "${PG_STARTED:-}" ]]; then
        scripts/postgres.sh stop --data "$PG_DATA" >/dev/null 2>&1 || true
    fi
    rm -rf "$WORK"
    exit "$rc"
}

interop_begin() {
    local name="$1"
    require_cmd curl
    export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PADDOCK_CACHE/target}"
    WORK="$(mktemp -d "${TMPDIR:-/tmp}/paddock-$name.XXXXXX")"
    RUNTIME_PID=""
    INTEROP_PIDS=()
    PG_STARTED=""
    DB_NAME=""
    trap interop_cleanup EXIT
    trap 'exit 130' INT TERM

    if [[ -n "${DATABASE_URL:-}" ]]; then
        SUPER_URL="$DATABASE_URL"
        : "${PADDOCK_PG_BIN:=$(scripts/postgres.sh install)}"
    else
        PG_DATA="$PADDOCK_CACHE/pgdata-interop"
        scripts/postgres.sh status --data "$PG_DATA" >/dev/null 2>&1 || PG_STARTED=1
        log "starting PostgreSQL"
        eval "$(scripts/postgres.sh start --data "$PG_DATA")"
        SUPER_URL="$DATABASE_URL"
    fi
    PSQL=("$PADDOCK_PG_BIN/psql" -q -v ON_ERROR_STOP=1)
    local db
    db="paddock_${name//-/_}_$(date +%s)_$$"
    "${PSQL[@]}" "$SUPER_URL" -c "CREATE DATABASE $db"
    DB_NAME="$db"
    # Swap the database name in the superuser URL; the runtime logs in as paddock_runtime on the same server.
    local base="${SUPER_URL%%\?*}"
    base="${base%/*}"
    local host="${base#*://}"
    host="${host#*@}"
    ADMIN_URL="$base/$DB_NAME"
    # shellcheck disable=SC2034  # read by the sourcing script
    RUNTIME_URL="postgres://paddock_runtime@$host/$DB_NAME"

    if [[ -n "${PADDOCK_RUNTIME_BIN:-}" ]]; then
        BIN="$PADDOCK_RUNTIME_BIN"
    else
        log "building paddock-runtime"
        cargo build --locked -p paddock-runtime --bin paddock-runtime >&2
        BIN="$CARGO_TARGET_DIR/debug/paddock-runtime"
    fi
    [[ -x "$BIN" ]] || die "no paddock-runtime binary at $BIN"

    log "applying migrations"
    "$BIN" migrate --database-url "$ADMIN_URL"
    "${PSQL[@]}" "$ADMIN_URL" -c "ALTER ROLE paddock_runtime LOGIN"
}

interop_embedding_yaml() {
    case "$1" in
        local) echo "embedding: { provider: local, model_dir: \"${PADDOCK_MODEL_DIR:-$(scripts/model.sh)}\" }" ;;
        none) echo "" ;;
    esac
}

interop_track() {
    INTEROP_PIDS+=("$1")
}

interop_serve() {
    local config="$1" url="$2"
    log "starting paddock-runtime at $url"
    "$BIN" serve --config "$config" >"$WORK/runtime.log" 2>&1 &
    RUNTIME_PID=$!
    for _ in $(seq 1 150); do
        curl -fsS "$url/readyz" >/dev/null 2>&1 && return 0
        kill -0 "$RUNTIME_PID" 2>/dev/null || die "paddock-runtime exited during start-up"
        sleep 0.2
    done
    die "paddock-runtime was not ready within 30s"
}
