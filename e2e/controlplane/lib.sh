# shellcheck shell=bash disable=SC2034
# Shared settings for the control-plane scripts. Sourced, never executed.
# The cache root, log and die come from the repository's one script library.
#
# Versions live here and in wrapper/go.mod; keep them in step.

# shellcheck source=../../scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../../scripts/lib.sh"
PADDOCK_LOG_TAG=controlplane

KUBE_VERSION=v1.34.4
# etcd is the version k8s.io/kubernetes ${KUBE_VERSION} requires (see wrapper/go.mod).
ETCD_VERSION=v3.6.4
KWOK_VERSION=v0.8.0

CONTROLPLANE_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CONTROLPLANE_BIN=$PADDOCK_CACHE/controlplane/$KUBE_VERSION/bin

# Binaries build.sh produces, in build order.
CONTROLPLANE_BINARIES=(etcd kube-apiserver kube-controller-manager kube-scheduler kubectl kwok)

# Cluster state directory for a cluster name.
cluster_state_dir() { printf '%s/cluster/%s\n' "$PADDOCK_CACHE" "${1:-paddock}"; }

# Components in start order; they are stopped in reverse.
COMPONENTS=(etcd kube-apiserver kube-controller-manager kube-scheduler kwok)

# pid_of_component STATE COMPONENT: prints the pid recorded for a component,
# but only while that pid still runs our binary for it. A pid file left behind
# by a crash (or a reboot) may name a process that has nothing to do with us.
pid_of_component() {
  local pidfile=$1/pids/$2.pid pid argv0
  [[ -f $pidfile ]] || return 1
  pid=$(<"$pidfile")
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  argv0=$(tr '\0' '\n' 2>/dev/null <"/proc/$pid/cmdline" | head -n1) || return 1
  [[ $argv0 == "$(cat "$1/pids/$2.bin" 2>/dev/null)" ]] || return 1
  printf '%s\n' "$pid"
}

# process_alive PID: true while PID runs. A zombie (an exited child that up.sh
# has not reaped yet) does not count.
process_alive() {
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  stat=${stat##*) }
  [[ ${stat%% *} != Z ]]
}

# group_alive PGID: true while a process of the group runs (zombies aside).
group_alive() {
  ps -e -o pgid=,stat= | awk -v g="$1" '$1 == g && $2 !~ /^Z/ { found = 1 } END { exit !found }'
}

# stop_components STATE: stops every component of a cluster. Each runs in its
# own process group (started with setsid), so the group is signalled: SIGTERM,
# then SIGKILL for whatever is still there after a grace period.
stop_components() {
  local state=$1 comp pid i
  local -a pids=()
  for ((i = ${#COMPONENTS[@]} - 1; i >= 0; i--)); do
    comp=${COMPONENTS[i]}
    if pid=$(pid_of_component "$state" "$comp"); then
      log "stopping $comp (pid $pid)"
      kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
      pids+=("$pid")
      # etcd last, after the apiserver has let go of it: wait for each in turn.
      for _ in $(seq 100); do
        process_alive "$pid" || break
        sleep 0.1
      done
    fi
    rm -f "$state/pids/$comp.pid"
  done
  for pid in "${pids[@]}"; do
    if process_alive "$pid" || group_alive "$pid"; then
      log "process group $pid did not stop on SIGTERM; sending SIGKILL"
      kill -KILL -- "-$pid" 2>/dev/null || true
    fi
  done
}
