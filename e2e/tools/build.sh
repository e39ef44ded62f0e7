#!/usr/bin/env bash
# Builds the command-line tools the e2e checks use, from the Go module proxy:
#   helm         helm.sh/helm/v4/cmd/helm
#   kubeconform  github.com/yannh/kubeconform/cmd/kubeconform
# Each lands in ${PADDOCK_CACHE:-$HOME/.cache/paddock}/tools/<name>-<version>/
# via `GOBIN=... go install pkg@version`, which uses the tool's own go.sum, so a
# pinned version always builds the same code. A tool already built with the
# same Go version and flags (recorded in a stamp file next to it) is not
# rebuilt. Prints `export` lines on stdout, for `eval "$(e2e/tools/build.sh)"`:
#   HELM, KUBECONFORM (absolute paths) and PATH with both directories in front.
#
# kubeconform needs JSON schemas, which it normally fetches from GitHub; see
# kubeconform.sh, which generates them from a running apiserver instead.
#
# Usage: e2e/tools/build.sh [--rebuild]
set -euo pipefail

# shellcheck source=../../scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../../scripts/lib.sh"
PADDOCK_LOG_TAG=tools

HELM_VERSION=${HELM_VERSION:-v4.3.1}
KUBECONFORM_VERSION=${KUBECONFORM_VERSION:-v0.8.0}
TOOLS_CACHE=$PADDOCK_CACHE/tools


rebuild=0
case ${1:-} in
  --rebuild) rebuild=1 ;;
  "") ;;
  -h | --help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
  *) die "unknown argument $1" ;;
esac

command -v go >/dev/null || die "go is not on PATH"
export GOTOOLCHAIN=local CGO_ENABLED=0 GOWORK=off GOFLAGS=

mkdir -p "$TOOLS_CACHE"
exec 9>"$TOOLS_CACHE/.build.lock"
flock 9

# install NAME VERSION PACKAGE [LDFLAGS]: prints the binary's path.
install_tool() {
  local name=$1 version=$2 pkg=$3 ldflags="-s -w ${4:-}"
  local dir=$TOOLS_CACHE/$name-$version key
  key="$pkg@$version $(go env GOVERSION) $ldflags"
  if [[ $rebuild == 0 && -x $dir/$name && -f $dir/.stamp && $(<"$dir/.stamp") == "$key" ]]; then
    log "$name $version is up to date"
  else
    log "building $name $version"
    local start tmp
    start=$(date +%s)
    tmp=$(mktemp -d "$TOOLS_CACHE/.tmp-$name.XXXXXX")
    # Run outside any module so go install resolves the tool by its own go.mod.
    (cd "$tmp" && GOBIN=$tmp go install -trimpath -ldflags "$ldflags" "$pkg@$version")
    mkdir -p "$dir"
    mv -f "$tmp/$name" "$dir/$name"
    rm -rf "$tmp"
    printf '%s\n' "$key" >"$dir/.stamp"
    log "built $name in $(($(date +%s) - start))s"
  fi
  printf '%s\n' "$dir/$name"
}

# helm reads its own version from these variables (internal/version); without
# them `helm version` prints a development version.
helm=$(install_tool helm "$HELM_VERSION" helm.sh/helm/v4/cmd/helm \
  "-X helm.sh/helm/v4/internal/version.version=$HELM_VERSION -X helm.sh/helm/v4/internal/version.gitTreeState=clean")
kubeconform=$(install_tool kubeconform "$KUBECONFORM_VERSION" github.com/yannh/kubeconform/cmd/kubeconform \
  "-X main.version=$KUBECONFORM_VERSION")

printf 'export HELM=%q\n' "$helm"
printf 'export KUBECONFORM=%q\n' "$kubeconform"
# shellcheck disable=SC2016 # $PATH is expanded by whoever evals this.
printf 'export PATH=%q:%q:"$PATH"\n' "$(dirname "$helm")" "$(dirname "$kubeconform")"
