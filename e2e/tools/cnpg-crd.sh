#!/usr/bin/env bash
# Prints the path of CloudNativePG's own `Cluster` CRD (postgresql.cnpg.io/v1), for checking
# examples/cloudnative-pg.yaml against it:
#   kubectl apply --server-side -f "$(e2e/tools/cnpg-crd.sh)"
#   e2e/tools/kubeconform.sh examples/
#
# The CRD YAML ships in CloudNativePG's Go module under config/crd/bases, so it comes from the
# Go module proxy like the other tools here (`go mod download`, checked against the checksum
# database) and is cached by version in the Go module cache, outside the clone. Installed in
# the run's cluster, it is published in the apiserver's OpenAPI document, from which
# kubeconform.sh generates the JSON schemas: the example is checked, strictly, against
# CloudNativePG's schema of the pinned version, as Paddock's own resources are against theirs.
#
# Usage: e2e/tools/cnpg-crd.sh   (CNPG_VERSION overrides the pinned version)
set -euo pipefail

# shellcheck source=../../scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../../scripts/lib.sh"
PADDOCK_LOG_TAG=cnpg-crd

CNPG_VERSION=${CNPG_VERSION:-v1.27.0}
MODULE=github.com/cloudnative-pg/cloudnative-pg

require_cmd go
# Outside any module: the download is of the module itself, not a dependency of ours.
dir=$(cd / && GOFLAGS=-mod=mod GOWORK=off GOTOOLCHAIN=local go mod download -json "$MODULE@$CNPG_VERSION" \
  | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
[[ -n $dir && -d $dir ]] || die "go mod download $MODULE@$CNPG_VERSION gave no module directory"
crd=$dir/config/crd/bases/postgresql.cnpg.io_clusters.yaml
[[ -f $crd ]] || die "$MODULE@$CNPG_VERSION has no $crd"
printf '%s\n' "$crd"
