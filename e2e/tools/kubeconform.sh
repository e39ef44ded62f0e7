#!/usr/bin/env bash
# Validates Kubernetes manifests with kubeconform, strictly and offline:
#   e2e/tools/kubeconform.sh [kubeconform flags] FILE...      (- reads stdin)
#   helm template charts/paddock | e2e/tools/kubeconform.sh -
#
# kubeconform normally downloads its JSON schemas from GitHub, which a build
# without internet cannot reach. Instead, the schemas are generated from the
# OpenAPI document (/openapi/v2) of the running apiserver that KUBECONFIG points
# at (e2e/controlplane/up.sh), by openapi2jsonschema/ in this directory. So:
#   - every built-in kind is checked against the schema of the exact Kubernetes
#     version under test, in strict mode: unknown fields, wrong types and
#     duplicate keys are errors;
#   - custom resources are checked against their CRDs' schemas too, provided
#     the CRDs are installed in that cluster first (kubectl apply -f crds/);
#   - a kind without a schema is an error: -ignore-missing-schemas is not used.
# Schemas are cached under ${PADDOCK_CACHE:-$HOME/.cache/paddock}/tools/
# kubeconform-schemas/<hash of the OpenAPI document>, so installing or changing
# a CRD yields a fresh set; the four sets used last are kept.
set -euo pipefail

# shellcheck source=../../scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../../scripts/lib.sh"
PADDOCK_LOG_TAG=kubeconform

here=$(cd "$(dirname "$0")" && pwd)

[[ $# -gt 0 ]] || die "usage: $0 [kubeconform flags] FILE... (- for stdin)"
[[ -n ${KUBECONFIG:-} ]] || die "KUBECONFIG is not set; start a cluster with e2e/controlplane/up.sh and eval its output"
command -v kubectl >/dev/null || die "kubectl is not on PATH (eval \"\$(e2e/controlplane/env.sh)\")"

eval "$("$here/build.sh")"

openapi=$(mktemp)
trap 'rm -f "$openapi"' EXIT
kubectl get --raw /openapi/v2 >"$openapi" || die "cannot read /openapi/v2 from the apiserver"
key=$(cat "$openapi" "$here/openapi2jsonschema/main.go" | sha256sum | cut -c1-16)
schemas=$PADDOCK_CACHE/tools/kubeconform-schemas/$key
if [[ ! -f $schemas/.complete ]]; then
  log "generating JSON schemas from the apiserver's OpenAPI document"
  rm -rf "$schemas"
  (cd "$here/openapi2jsonschema" && GOFLAGS='' GOWORK=off GOTOOLCHAIN=local go run . -in "$openapi" -out "$schemas")
  touch "$schemas/.complete"
  # Each set is about 40 MB; keep the four used last.
  # shellcheck disable=SC2012 # the names are hex digests
  (cd "$PADDOCK_CACHE/tools/kubeconform-schemas" && ls -1t | tail -n +5 | xargs -r rm -rf --)
fi
touch "$schemas"

# The location template ends in .json, so kubeconform takes it as is: -strict
# picks the standalone-strict directory through {{ .StrictSuffix }}.
exec "$KUBECONFORM" -strict -summary \
  -schema-location "$schemas/standalone{{ .StrictSuffix }}/{{ .ResourceKind }}{{ .KindSuffix }}.json" \
  "$@"
