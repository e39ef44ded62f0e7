#!/usr/bin/env bash
# A2A interoperability: the official A2A Python SDK (a2a-sdk) against a real paddock-runtime.
#
#   scripts/a2a-interop.sh [--embedding none|local] [-- PYTEST_ARGS...]
#
# Starts (or reuses, when DATABASE_URL names a superuser URL) PostgreSQL, creates a fresh database, applies
# the migrations, provisions the tenants acme (holding examples/documents.jsonl) and globex (empty), makes a
# throwaway signing key, starts `paddock-runtime serve` on a free port with extractive answers (no model
# endpoint), loads the documents through MCP and runs runtime/tests/interop/test_a2a_sdk.py with the pinned
# SDK of scripts/requirements-interop.txt. Everything it started or created is removed on exit.
#
# Environment:
#   DATABASE_URL          reuse this PostgreSQL (superuser URL) instead of starting one
#   PADDOCK_RUNTIME_BIN   use this paddock-runtime binary instead of building one
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$PADDOCK_REPO_ROOT"

EMBEDDING=none
PYTEST_ARGS=()
while (($#)); do
    case "$1" in
        --embedding)
            [[ $# -ge 2 && "$2" =~ ^(local|none)$ ]] || die "--embedding takes local or none"
            EMBEDDING="$2"
            shift 2
            ;;
        --) shift; PYTEST_ARGS=("$@"); break ;;
        -h | --help) sed -n '2,14p' "$0"; exit 0 ;;
        *) die "unknown argument: $1 (see --help)" ;;
    esac
done
require_cmd curl

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PADDOCK_CACHE/target}"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/paddock-a2a-interop.XXXXXX")"
RUNTIME_PID=""
PG_STARTED=""
DB_CREATED=""

cleanup() {
    local rc=$?
    if [[ -n "$RUNTIME_PID" ]]; then
        kill "$RUNTIME_PID" 2>/dev/null || true
        wait "$RUNTIME_PID" 2>/dev/null || true
    fi
    if ((rc != 0)) && [[ -s "$WORK/runtime.log" ]]; then
        log "last lines of the runtime log:"
        tail -n 40 "$WORK/runtime.log" >&2 || true
    fi
    if [[ -n "$DB_CREATED" ]]; then
        "$PADDOCK_PG_BIN/psql" -q "$SUPER_URL" -c "DROP DATABASE IF EXISTS $DB_NAME WITH (FORCE)" >/dev/null 2>&1 \
            || log "could not drop database $DB_NAME"
    fi
    if [[ -n "$PG_STARTED" ]]; then
        scripts/postgres.sh stop --data "$PG_DATA" >/dev/null 2>&1 || true
    fi
    rm -rf "$WORK"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- PostgreSQL and a fresh database ----------------------------------------------------------------------------
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
DB_NAME="paddock_a2a_interop_$(date +%s)_$$"
"${PSQL[@]}" "$SUPER_URL" -c "CREATE DATABASE $DB_NAME"
DB_CREATED=1
BASE_URL="${SUPER_URL%%\?*}"
BASE_URL="${BASE_URL%/*}"
ADMIN_URL="$BASE_URL/$DB_NAME"
HOST_PART="${BASE_URL#*://}"
HOST_PART="${HOST_PART#*@}"
RUNTIME_URL="postgres://paddock_runtime@$HOST_PART/$DB_NAME"

# ---- the runtime --------------------------------------------------------------------------------------------
if [[ -n "${PADDOCK_RUNTIME_BIN:-}" ]]; then
    BIN="$PADDOCK_RUNTIME_BIN"
else
    log "building paddock-runtime"
    cargo build --locked -p paddock-runtime --bin paddock-runtime >&2
    BIN="$CARGO_TARGET_DIR/debug/paddock-runtime"
fi
[[ -x "$BIN" ]] || die "no paddock-runtime binary at $BIN"

log "applying migrations and provisioning tenants acme and globex"
"$BIN" migrate --database-url "$ADMIN_URL"
"${PSQL[@]}" "$ADMIN_URL" <<'SQL'
ALTER ROLE paddock_runtime LOGIN;
INSERT INTO tenants (id, display_name, requests_per_minute, burst, budget_monthly)
VALUES ('acme', 'Acme (A2A interop)', 60000, 1000, 5), ('globex', 'Globex (A2A interop)', 60000, 1000, 5);
SQL

"$BIN" keygen --dir "$WORK/keys" 2>/dev/null

PORT="$(free_port)"
BASE="http://127.0.0.1:$PORT"
case "$EMBEDDING" in
    local)
        MODEL_DIR="${PADDOCK_MODEL_DIR:-$(scripts/model.sh)}"
        EMBEDDING_YAML="embedding: { provider: local, model_dir: \"$MODEL_DIR\" }"
        ;;
    none) EMBEDDING_YAML="" ;;
esac
cat >"$WORK/runtime.yaml" <<YAML
listen: 127.0.0.1:$PORT
database:
  url: $RUNTIME_URL
auth:
  resource: $BASE/mcp
  issuers:
    - issuer: paddock-interop
      audience: paddock
      jwks: { file: "$WORK/keys/jwks.json" }
$EMBEDDING_YAML
llm: { provider: extractive }
a2a: { keepalive_ms: 2000 }
log_format: json
YAML

log "starting paddock-runtime on 127.0.0.1:$PORT"
"$BIN" serve --config "$WORK/runtime.yaml" >"$WORK/runtime.log" 2>&1 &
RUNTIME_PID=$!
ready=""
for _ in $(seq 1 150); do
    if curl -fsS "$BASE/readyz" >/dev/null 2>&1; then
        ready=1
        break
    fi
    kill -0 "$RUNTIME_PID" 2>/dev/null || die "paddock-runtime exited during start-up"
    sleep 0.2
done
[[ -n "$ready" ]] || die "paddock-runtime was not ready within 30s"

mint() { # TENANT SCOPES
    "$BIN" token --key "$WORK/keys/signing-key.pem" --issuer paddock-interop --audience paddock \
        --tenant "$1" --user interop --scope "$2" --ttl 3600
}
TOKEN_WRITE="$(mint acme "documents:read documents:write")"
TOKEN="$(mint acme "tasks:run documents:read usage:read")"
TOKEN_OTHER="$(mint globex "tasks:run documents:read")"

log "ingesting examples/documents.jsonl for tenant acme"
"$BIN" ingest --url "$BASE/mcp" --token "$TOKEN_WRITE" --file examples/documents.jsonl

PY="$(scripts/pyenv.sh)"
log "running the A2A interoperability tests"
export PADDOCK_A2A_BASE="$BASE" PADDOCK_A2A_TOKEN="$TOKEN" PADDOCK_A2A_TOKEN_OTHER="$TOKEN_OTHER"
"$PY" -m pytest -p no:cacheprovider -q runtime/tests/interop/test_a2a_sdk.py "${PYTEST_ARGS[@]}"
