#!/usr/bin/env bash
# Runs paddock-runtime alone, without Kubernetes, for people who only want an MCP/A2A server
# (`scripts/demo.sh --runtime-only` runs this):
#   PostgreSQL 18 + pgvector → migrations → a demo tenant → paddock-runtime serving MCP with the in-process
#   embedding model → sample documents loaded through MCP → a token and a curl line printed.
#
#   scripts/runtime-demo.sh [--port PORT] [--metrics-port PORT] [--exit]
#
# --port serves MCP and A2A (default 8080), --metrics-port serves /metrics (default 9090). Ctrl-C stops the
# runtime (PostgreSQL keeps running); --exit stops it right after the summary.
#
# The demo database is recreated on each run. Stop PostgreSQL afterwards with:
#   scripts/postgres.sh stop --data "$PADDOCK_CACHE/pgdata-demo"
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$PADDOCK_REPO_ROOT"

PORT=8080
METRICS_PORT=9090
EXIT_AFTER_SUMMARY=0
while (($#)); do
    case "$1" in
        --port) PORT="$2"; shift 2 ;;
        --metrics-port) METRICS_PORT="$2"; shift 2 ;;
        --exit) EXIT_AFTER_SUMMARY=1; shift ;;
        -h | --help) sed -n '2,14p' "$0"; exit 0 ;;
        *) die "unknown argument: $1" ;;
    esac
done
port_bindable "$PORT" || die "port $PORT is busy; pass --port"
port_bindable "$METRICS_PORT" || die "port $METRICS_PORT is busy; pass --metrics-port"

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PADDOCK_CACHE/target}"
DEMO="$PADDOCK_CACHE/demo"
mkdir -p "$DEMO"

log "starting PostgreSQL"
eval "$(scripts/postgres.sh start --data "$PADDOCK_CACHE/pgdata-demo")"
PSQL=("$PADDOCK_PG_BIN/psql" -q -v ON_ERROR_STOP=1)
ADMIN_URL="postgres://postgres@127.0.0.1:$PADDOCK_PG_PORT/paddock"
RUNTIME_URL="postgres://paddock_runtime@127.0.0.1:$PADDOCK_PG_PORT/paddock"
# The demo's database is scratch: made afresh on every run, so an older run's schema or data never gets in the way.
"${PSQL[@]}" "$DATABASE_URL" -c "DROP DATABASE IF EXISTS paddock WITH (FORCE)" -c "CREATE DATABASE paddock"

log "fetching the embedding model"
MODEL_DIR="$(scripts/model.sh)"

log "building paddock-runtime"
cargo build -p paddock-runtime --bin paddock-runtime >&2
BIN="$CARGO_TARGET_DIR/debug/paddock-runtime"

log "applying migrations and provisioning the demo tenant"
"$BIN" migrate --database-url "$ADMIN_URL"
"${PSQL[@]}" "$ADMIN_URL" <<'SQL'
ALTER ROLE paddock_runtime LOGIN;
INSERT INTO tenants (id, display_name, budget_monthly, requests_per_minute, burst)
VALUES ('demo', 'Demo tenant', 25, 6000, 500)
ON CONFLICT (id) DO NOTHING;
SQL

[[ -f "$DEMO/keys/signing-key.pem" ]] || "$BIN" keygen --dir "$DEMO/keys"
cat >"$DEMO/runtime.yaml" <<YAML
listen: 127.0.0.1:$PORT
metrics_listen: 127.0.0.1:$METRICS_PORT
database:
  url: $RUNTIME_URL
auth:
  resource: http://127.0.0.1:$PORT/mcp
  issuers:
    - issuer: paddock-dev
      audience: paddock
      jwks: { file: $DEMO/keys/jwks.json }
embedding:
  provider: local
  model_dir: $MODEL_DIR
log_format: text
YAML

log "starting paddock-runtime on 127.0.0.1:$PORT"
"$BIN" serve --config "$DEMO/runtime.yaml" &
RUNTIME_PID=$!
trap 'kill "$RUNTIME_PID" 2>/dev/null || true; wait "$RUNTIME_PID" 2>/dev/null || true' EXIT INT TERM
for _ in $(seq 1 100); do
    curl -fsS "http://127.0.0.1:$PORT/readyz" >/dev/null 2>&1 && break
    kill -0 "$RUNTIME_PID" 2>/dev/null || die "paddock-runtime exited; see the log above"
    sleep 0.2
done

TOKEN="$("$BIN" token --key "$DEMO/keys/signing-key.pem" --issuer paddock-dev --audience paddock \
    --tenant demo --user demo-user --scope "documents:read documents:write tasks:run usage:read" --ttl 86400)"
"$BIN" ingest --url "http://127.0.0.1:$PORT/mcp" --token "$TOKEN" --file examples/documents.jsonl

# The console's sign-in link: a single-use code, redeemed by the page for the token. The code sits in the
# fragment, which browsers never send to a server, and the token in no URL at all.
handover_link() {
    local code
    code="$(curl -fsS -X POST "http://127.0.0.1:$PORT/console/api/handover" -H "Authorization: Bearer $TOKEN" \
        -H 'Content-Type: application/json' -d '{}' | sed -n 's/.*"code":"\([A-Za-z0-9_-]*\)".*/\1/p')"
    [[ -n $code ]] || die "the runtime handed over no console sign-in code"
    printf 'http://127.0.0.1:%s/console/#code=%s' "$PORT" "$code"
}
CONSOLE_LINK="$(handover_link)"

cat <<INFO

Paddock is serving MCP at http://127.0.0.1:$PORT/mcp for tenant "demo" (documents from examples/documents.jsonl).

The console, signed in (the link works once, within two minutes):

  $CONSOLE_LINK

  # a fresh link
  curl -s -X POST http://127.0.0.1:$PORT/console/api/handover -H "Authorization: Bearer \$TOKEN" \\
    -H 'Content-Type: application/json' -d '{}'     # then open http://127.0.0.1:$PORT/console/#code=<code>

  export TOKEN='$TOKEN'

  # 1. open a session (the answer's Mcp-Session-Id header names it)
  curl -si http://127.0.0.1:$PORT/mcp -H "Authorization: Bearer \$TOKEN" -H 'Content-Type: application/json' \\
    -d '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"curl","version":"1"}}}'

  # 2. search (put the session id from step 1 in SID)
  curl -s http://127.0.0.1:$PORT/mcp -H "Authorization: Bearer \$TOKEN" -H "Mcp-Session-Id: \$SID" \\
    -H 'MCP-Protocol-Version: 2025-11-25' -H 'Content-Type: application/json' \\
    -d '{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"hybrid_search","arguments":{"query":"right to be forgotten","limit":3}}}'

  # 3. an A2A research task, streamed (progress, then a report with citations and its cost)
  curl -N http://127.0.0.1:$PORT/a2a -H "Authorization: Bearer \$TOKEN" -H 'Content-Type: application/json' \\
    -d '{"jsonrpc":"2.0","id":1,"method":"SendStreamingMessage","params":{"message":{"messageId":"m1","role":"ROLE_USER","parts":[{"text":"What does the right to erasure require?"}],"metadata":{"skill":"research"}}}}'

Agent card: http://127.0.0.1:$PORT/.well-known/agent-card.json    Metrics: http://127.0.0.1:$METRICS_PORT/metrics
Ctrl-C stops the runtime.
INFO
((EXIT_AFTER_SUMMARY)) || wait "$RUNTIME_PID"
