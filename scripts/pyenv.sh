#!/usr/bin/env bash
# Creates the Python environment for the interoperability tests (the official
# MCP and A2A SDKs, httpx, pytest) at $PADDOCK_CACHE/venv and prints the path of
# its python:
#
#   PY="$(scripts/pyenv.sh)" && "$PY" -m pytest e2e/...
#
# The venv is rebuilt from scratch whenever requirements-interop.txt or the base
# Python changes; otherwise a run only compares a hash stamp.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

REQUIREMENTS="$PADDOCK_SCRIPTS_DIR/requirements-interop.txt"
VENV="$PADDOCK_CACHE/venv"
STAMP="$VENV/.paddock-stamp"
PYTHON="${PADDOCK_PYTHON:-python3}"

usage() {
    cat <<USAGE
Usage: $(basename "$0") [--help]

Creates (or reuses) the venv \$PADDOCK_CACHE/venv with the pinned packages of
scripts/requirements-interop.txt and prints the path of its python on stdout.

Environment:
  PADDOCK_CACHE    cache root (default: \$HOME/.cache/paddock)
  PADDOCK_PYTHON   base interpreter, 3.10 or newer (default: python3)
USAGE
}

# The stamp covers the requirements and the exact base interpreter, so a
# changed pin or a Python upgrade both lead to a rebuild.
wanted_stamp() {
    local pyid
    pyid="$("$PYTHON" -c 'import sys; print(sys.version, sys.executable, sys.base_prefix)')" \
        || die "$PYTHON does not run"
    printf '%s\n%s\n' "$(sha256_of "$REQUIREMENTS")" "$pyid" | sha256sum | cut -d' ' -f1
}

up_to_date() {
    [[ -f "$STAMP" && "$(cat "$STAMP")" == "$1" ]] && "$VENV/bin/python" -c '' 2>/dev/null
}

build_venv() {
    local want="$1"
    # Another run may have finished the job while this one waited for the lock.
    up_to_date "$want" && return 0
    "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 10))' \
        || die "$PYTHON is older than 3.10, which the MCP and A2A SDKs need"
    log "creating $VENV from $REQUIREMENTS"
    rm -rf "$VENV"
    "$PYTHON" -m venv "$VENV" >&2 \
        || die "could not create a venv with $PYTHON (on Debian: apt-get install python3-venv)"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
        --requirement "$REQUIREMENTS" >&2 \
        || die "pip could not install $REQUIREMENTS"
    "$VENV/bin/python" -m pip check --disable-pip-version-check >&2 \
        || die "the installed packages have conflicting requirements"
    "$VENV/bin/python" -c 'import a2a.client, httpx, mcp, mcp.client.streamable_http, pytest' \
        || die "the SDKs were installed but do not import"
    printf '%s\n' "$want" >"$STAMP"
    log "venv ready: $("$VENV/bin/python" -m pip freeze --disable-pip-version-check \
        | grep -Ei '^(mcp|a2a-sdk|httpx|pytest)==' | tr '\n' ' ')"
}

main() {
    while (($#)); do
        case "$1" in
            -h | --help)
                usage
                exit 0
                ;;
            *) die "unknown argument '$1' (see --help)" ;;
        esac
    done
    require_cmd "$PYTHON" flock sha256sum
    [[ -f "$REQUIREMENTS" ]] || die "missing $REQUIREMENTS"
    local want
    want="$(wanted_stamp)"
    if ! up_to_date "$want"; then
        mkdir -p "$PADDOCK_CACHE"
        with_lock "$VENV.lock" build_venv "$want"
    fi
    printf '%s\n' "$VENV/bin/python"
}

main "$@"
