#!/usr/bin/env bash
# Stops a control plane started by up.sh and removes its state directory.
# Safe to run at any time: with nothing running it only removes stale state.
#
# Usage: e2e/controlplane/down.sh [name]     (or PADDOCK_CLUSTER=name)
set -euo pipefail

# shellcheck source=e2e/controlplane/lib.sh
. "$(dirname "$0")/lib.sh"

case ${1:-} in
  -h | --help) sed -n '2,5p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
esac
name=${1:-${PADDOCK_CLUSTER:-paddock}}
[[ $name =~ ^[a-z0-9][a-z0-9-]*$ ]] || die "cluster name must be lowercase letters, digits and dashes: '$name'"
state=$(cluster_state_dir "$name")

if [[ ! -e $state ]]; then
  log "cluster $name is not running (no $state)"
  exit 0
fi
stop_components "$state"
rm -rf "$state"
log "cluster $name is down"
