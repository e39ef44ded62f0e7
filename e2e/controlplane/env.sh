#!/usr/bin/env bash
# Prints the environment of a running cluster started by up.sh, as `export`
# lines for eval:
#   eval "$(e2e/controlplane/env.sh)"
# KUBECONFIG is the admin kubeconfig (system:masters); PATH gets the directory
# of kubectl and the other binaries of the control plane in front, so the
# kubectl used matches the cluster; KUBECACHEDIR keeps kubectl's discovery
# cache in the cluster's state directory (the port changes on every start, so
# ~/.kube/cache would only collect dead entries). Fails when the cluster is not
# up.
#
# Usage: e2e/controlplane/env.sh [name]     (or PADDOCK_CLUSTER=name)
set -euo pipefail

# shellcheck source=e2e/controlplane/lib.sh
. "$(dirname "$0")/lib.sh"

case ${1:-} in
  -h | --help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
esac
name=${1:-${PADDOCK_CLUSTER:-paddock}}
state=$(cluster_state_dir "$name")

[[ -f $state/env && -f $state/admin.kubeconfig ]] || die "cluster $name is not up; run e2e/controlplane/up.sh"
pid_of_component "$state" kube-apiserver >/dev/null || die "cluster $name is not running (kube-apiserver is gone); run e2e/controlplane/up.sh"

printf 'export KUBECONFIG=%q\n' "$state/admin.kubeconfig"
printf 'export KUBECACHEDIR=%q\n' "$state/cache"
# shellcheck disable=SC2016 # $PATH is expanded by whoever evals this.
printf 'export PATH=%q:"$PATH"\n' "$CONTROLPLANE_BIN"
