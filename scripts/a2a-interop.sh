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
# shellcheck source-path=SCRIPTDIR source=interop-lib.sh
. scripts/interop-lib.sh
interop_begin a2a-interop

log "provisioning tenants acme and globex"
"${PSQL[@]}" "$ADMIN_URL" <<'SQL'
INSERT INTO tenants (id, display_name, requests_per_minute, burst, budget_monthly)
VALUES ('acme', 'Acme (A2A interop)', 60000, 1000, 5), ('globex', 'Globex (A2A interop)', 60000, 1000, 5);
SQL

"$BIN" keygen --dir "$WORK/keys" 2>/dev/null

PORT="$(free_port)"
BASE="http://127.0.0.1:$PORT"
EMBEDDING_YAML="$(interop_embedding_yaml "$EMBEDDING")"
cat >"$WORK/runtime.yaml" <<YAML
listen: 127.0.0.1:$PORT
metrics_listen: 127.0.0.1:0
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

interop_serve "$WORK/runtime.yaml" "$BASE"

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
