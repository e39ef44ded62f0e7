#!/usr/bin/env bash
# Builds the command-line tools the e2e checks use, from the Go module proxy:
#   helm         helm.sh/helm/v4/cmd/helm
#   kubeconform  github.com/yannh/kubeconform/cmd/kubeconform
#   promtool     github.com/prometheus/prometheus/cmd/promtool (only when named)
#   prometheus   github.com/prometheus/prometheus/cmd/prometheus (only when named)
#   jaeger       github.com/jaegertracing/jaeger/cmd/jaeger (only when named; Jaeger v2)
# Each lands in ${PADDOCK_CACHE:-$HOME/.cache/paddock}/tools/<name>-<version>/
# via `GOBIN=... go install pkg@version`, which uses the tool's own go.sum, so a
# pinned version always builds the same code. A tool already built with the
# same Go version, tags and flags (recorded in a stamp file next to it) is not
# rebuilt. Prints `export` lines on stdout, for `eval "$(e2e/tools/build.sh)"`:
#   HELM, KUBECONFORM (absolute paths) and PATH with both directories in front;
#   with tool names, only those tools (PROMTOOL, PROMETHEUS, JAEGER).
#
# kubeconform needs JSON schemas, which it normally fetches from GitHub; see
# kubeconform.sh, which generates them from a running apiserver instead.
#
# promtool is built without Prometheus' service discovery plugins (tag
# remove_all_sd; checking and unit-testing rules needs none of them), and in a
# build cache of its own that is deleted afterwards: its 0.8 GB would only
# serve a rebuild of the same pinned version, which the stamp already spares.
# prometheus (the server, for the e2e scenario that scrapes the runtime and the
# operator) is built the same way; the e2e checks only use its HTTP API, so its
# web UI's assets are not built. jaeger (an OTLP receiver with a query API, for
# the e2e trace scenario) gets a build cache of its own too.
#
# Usage: e2e/tools/build.sh [--rebuild] [helm|kubeconform|promtool|prometheus|jaeger]...
set -euo pipefail
# install_tool runs in a command substitution: without this, a failed build there went unnoticed.
shopt -s inherit_errexit

# shellcheck source=../../scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../../scripts/lib.sh"
PADDOCK_LOG_TAG=tools

HELM_VERSION=${HELM_VERSION:-v4.3.1}
KUBECONFORM_VERSION=${KUBECONFORM_VERSION:-v0.8.0}
# The Go module version of Prometheus 3.16.0 (v0.3XX.Y is Prometheus 3.XX.Y).
PROMTOOL_VERSION=${PROMTOOL_VERSION:-v0.316.0}
PROMETHEUS_VERSION=${PROMETHEUS_VERSION:-$PROMTOOL_VERSION}
# Jaeger's v1.x module tags carry the Jaeger v2 binary (cmd/jaeger, built on the
# OpenTelemetry Collector); the version is the one e2e/tools/jaeger/go.mod requires.
JAEGER_VERSION=$(sed -n 's/^require github.com\/jaegertracing\/jaeger \(v[^ ]*\)$/\1/p' \
  "$PADDOCK_REPO_ROOT/e2e/tools/jaeger/go.mod")
[[ -n $JAEGER_VERSION ]] || die "e2e/tools/jaeger/go.mod requires no github.com/jaegertracing/jaeger"
TOOLS_CACHE=$PADDOCK_CACHE/tools

rebuild=0
tools=()
for arg in "$@"; do
  case $arg in
    --rebuild) rebuild=1 ;;
    helm | kubeconform | promtool | prometheus | jaeger) tools+=("$arg") ;;
    -h | --help) sed -n '2,30p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument $arg" ;;
  esac
done
[[ ${#tools[@]} -gt 0 ]] || tools=(helm kubeconform)

command -v go >/dev/null || die "go is not on PATH"
export GOTOOLCHAIN=local CGO_ENABLED=0 GOWORK=off GOFLAGS=

mkdir -p "$TOOLS_CACHE"
exec 9>"$TOOLS_CACHE/.build.lock"
flock 9

# install NAME VERSION PACKAGE [LDFLAGS [TAGS [OWN_GOCACHE [WRAPPER]]]]: prints the binary's path.
# With OWN_GOCACHE=1 the build uses a fresh build cache, deleted afterwards. With WRAPPER (a
# directory holding a go.mod and go.sum), PACKAGE is built inside that module with -mod=readonly
# instead of by `go install PACKAGE@VERSION`; a change of its go.mod or go.sum rebuilds.
install_tool() {
  local name=$1 version=$2 pkg=$3 ldflags="-s -w ${4:-}" tags=${5:-} own_cache=${6:-0} wrapper=${7:-}
  local dir=$TOOLS_CACHE/$name-$version key
  key="$pkg@$version $(go env GOVERSION) $ldflags"
  [[ -z $tags ]] || key+=" tags=$tags"
  [[ -z $wrapper ]] || key+=" module=$(cat "$wrapper/go.mod" "$wrapper/go.sum" | sha256sum | cut -c1-16)"
  if [[ $rebuild == 0 && -x $dir/$name && -f $dir/.stamp && $(<"$dir/.stamp") == "$key" ]]; then
    log "$name $version is up to date"
  else
    log "building $name $version"
    local start tmp gocache
    start=$(date +%s)
    tmp=$(mktemp -d "$TOOLS_CACHE/.tmp-$name.XXXXXX")
    gocache=$(go env GOCACHE)
    [[ $own_cache == 0 ]] || gocache=$tmp/gocache
    if [[ -n $wrapper ]]; then
      (cd "$wrapper" && GOCACHE=$gocache GOFLAGS=-mod=readonly go build -trimpath -tags "$tags" -ldflags "$ldflags" -o "$tmp/$name" "$pkg") \
        || { rm -rf "$tmp"; die "failed to build $name $version"; }
    else
      # Run outside any module so go install resolves the tool by its own go.mod.
      (cd "$tmp" && GOBIN=$tmp GOCACHE=$gocache go install -trimpath -tags "$tags" -ldflags "$ldflags" "$pkg@$version") \
        || { rm -rf "$tmp"; die "failed to build $name $version"; }
    fi
    mkdir -p "$dir"
    mv -f "$tmp/$name" "$dir/$name"
    rm -rf "$tmp"
    printf '%s\n' "$key" >"$dir/.stamp"
    log "built $name in $(($(date +%s) - start))s"
  fi
  printf '%s\n' "$dir/$name"
}

dirs=()
for tool in "${tools[@]}"; do
  case $tool in
    helm)
      # helm reads its own version from these variables (internal/version); without
      # them `helm version` prints a development version.
      path=$(install_tool helm "$HELM_VERSION" helm.sh/helm/v4/cmd/helm \
        "-X helm.sh/helm/v4/internal/version.version=$HELM_VERSION -X helm.sh/helm/v4/internal/version.gitTreeState=clean")
      printf 'export HELM=%q\n' "$path"
      ;;
    kubeconform)
      path=$(install_tool kubeconform "$KUBECONFORM_VERSION" github.com/yannh/kubeconform/cmd/kubeconform \
        "-X main.version=$KUBECONFORM_VERSION")
      printf 'export KUBECONFORM=%q\n' "$path"
      ;;
    promtool)
      # prometheus/common/version holds what `promtool --version` prints.
      v=github.com/prometheus/common/version
      path=$(install_tool promtool "$PROMTOOL_VERSION" github.com/prometheus/prometheus/cmd/promtool \
        "-X $v.Version=3.${PROMTOOL_VERSION#v0.3}" remove_all_sd 1)
      printf 'export PROMTOOL=%q\n' "$path"
      ;;
    prometheus)
      v=github.com/prometheus/common/version
      path=$(install_tool prometheus "$PROMETHEUS_VERSION" github.com/prometheus/prometheus/cmd/prometheus \
        "-X $v.Version=3.${PROMETHEUS_VERSION#v0.3}" remove_all_sd 1)
      printf 'export PROMETHEUS=%q\n' "$path"
      ;;
    jaeger)
      # Built in the wrapper module e2e/tools/jaeger (Jaeger's go.mod has a replace directive,
      # which `go install pkg@version` refuses); its version is the one that module requires.
      path=$(install_tool jaeger "$JAEGER_VERSION" github.com/jaegertracing/jaeger/cmd/jaeger \
        "-X github.com/jaegertracing/jaeger/internal/version.latestVersion=$JAEGER_VERSION" "" 1 \
        "$PADDOCK_REPO_ROOT/e2e/tools/jaeger")
      printf 'export JAEGER=%q\n' "$path"
      ;;
  esac
  dirs+=("$(dirname "$path")")
done
# shellcheck disable=SC2016 # $PATH is expanded by whoever evals this.
printf 'export PATH=%s"$PATH"\n' "$(printf '%q:' "${dirs[@]}")"
