#!/usr/bin/env bash
# Writes a kubeconfig that authenticates as a ServiceAccount of a running
# cluster, with a token from the TokenRequest API (what `kubectl create token`
# uses), and prints its path. Whatever uses it gets exactly the RBAC granted to
# that ServiceAccount, as a pod running under it would.
#
#   kubeconfig=$(e2e/controlplane/sa-kubeconfig.sh paddock-system paddock)
#   KUBECONFIG=$kubeconfig kubectl auth can-i list secrets -A
#
# The ServiceAccount must exist (apply the chart or its RBAC first). The file
# goes to the cluster's state directory, so down.sh removes it.
#
# Usage: e2e/controlplane/sa-kubeconfig.sh NAMESPACE SERVICEACCOUNT [DURATION]
#        (DURATION defaults to 24h; PADDOCK_CLUSTER picks the cluster)
set -euo pipefail

# shellcheck source=e2e/controlplane/lib.sh
. "$(dirname "$0")/lib.sh"

case ${1:-} in
  -h | --help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
esac
[[ $# -ge 2 && $# -le 3 ]] || die "usage: $0 NAMESPACE SERVICEACCOUNT [DURATION]"
namespace=$1 sa=$2 duration=${3:-24h}
name=${PADDOCK_CLUSTER:-paddock}
state=$(cluster_state_dir "$name")
admin=$state/admin.kubeconfig
[[ -f $admin ]] || die "cluster $name is not up; run e2e/controlplane/up.sh"

kubectl() { KUBECACHEDIR=$state/cache "$CONTROLPLANE_BIN/kubectl" --kubeconfig "$admin" "$@"; }

token=$(kubectl -n "$namespace" create token "$sa" --duration="$duration") ||
  die "cannot get a token for serviceaccount $namespace/$sa"
server=$(kubectl config view --minify -o jsonpath='{.clusters[0].cluster.server}')
ca=$(kubectl config view --minify --raw -o jsonpath='{.clusters[0].cluster.certificate-authority-data}')

out=$state/sa-$namespace-$sa.kubeconfig
umask 077
cat >"$out" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: $name
  cluster:
    server: $server
    certificate-authority-data: $ca
users:
- name: $namespace-$sa
  user:
    token: $token
contexts:
- name: $namespace-$sa
  context:
    cluster: $name
    namespace: $namespace
    user: $namespace-$sa
current-context: $namespace-$sa
EOF
printf '%s\n' "$out"
