#!/usr/bin/env bash
# Builds etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubectl
# and kwok from the Go module proxy into
#   ${PADDOCK_CACHE:-$HOME/.cache/paddock}/controlplane/<kube version>/bin
# and prints that directory on stdout (progress goes to stderr).
#
# The Kubernetes binaries and etcd come from the wrapper module in wrapper/
# (see the comment in wrapper/go.mod for why it exists). kwok v0.8.0 needs
# k8s.io/* v0.36, which would clash with the v0.34.4 pins of the wrapper, so it
# is built on its own with `go install sigs.k8s.io/kwok/cmd/kwok@<version>`,
# which uses kwok's own go.mod and go.sum (it has no replace directives).
#
# Each binary has a stamp file keyed on the Go version, the wrapper's go.mod and
# go.sum and the build flags. A binary whose stamp matches is not rebuilt, so a
# re-run is instant; --rebuild forces every binary to be built again, and
# --check builds nothing and succeeds only when every binary is up to date.
#
# The build reads the committed go.mod/go.sum with -mod=readonly and writes
# nothing into the repository; a go.sum that misses an entry fails the build
# instead of being edited (run `go mod tidy` in wrapper/ and commit the result).
#
# Usage: e2e/controlplane/build.sh [--rebuild | --check] [binary...]
set -euo pipefail

# shellcheck source=e2e/controlplane/lib.sh
. "$(dirname "$0")/lib.sh"

rebuild=0
check=0
wanted=()
for arg in "$@"; do
  case $arg in
    --rebuild) rebuild=1 ;;
    --check) check=1 ;;
    -h | --help) sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) die "unknown flag $arg" ;;
    *) wanted+=("$arg") ;;
  esac
done
[[ ${#wanted[@]} -gt 0 ]] || wanted=("${CONTROLPLANE_BINARIES[@]}")

command -v go >/dev/null || die "go is not on PATH"
export GOTOOLCHAIN=local CGO_ENABLED=0 GOWORK=off
wrapper=$CONTROLPLANE_DIR/wrapper

mkdir -p "$CONTROLPLANE_BIN"
# Two builds at once (say, two up.sh runs) would race on the same outputs. A check
# only reads the stamps, so it does not wait for a build that is running.
if ((check == 0)); then
  exec 9>"$CONTROLPLANE_BIN/.build.lock"
  flock 9
fi

package_of() {
  case $1 in
    etcd) echo go.etcd.io/etcd/server/v3 ;;
    kube-apiserver | kube-controller-manager | kube-scheduler | kubectl) echo "k8s.io/kubernetes/cmd/$1" ;;
    kwok) echo "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION" ;;
    *) die "unknown binary $1 (known: ${CONTROLPLANE_BINARIES[*]})" ;;
  esac
}

# The same flags `make` upstream stamps (hack/lib/version.sh), so /version says
# $KUBE_VERSION rather than v0.0.0-master. buildDate is the release tag's time
# from the module proxy, which keeps the binaries reproducible.
kube_ldflags() {
  local date major minor
  date=$(cd "$wrapper" && go list -mod=readonly -m -json k8s.io/kubernetes | sed -n 's/^[[:space:]]*"Time": "\(.*\)",*$/\1/p')
  [[ -n $date ]] || die "cannot read the release time of k8s.io/kubernetes $KUBE_VERSION"
  major=${KUBE_VERSION#v}; major=${major%%.*}
  minor=${KUBE_VERSION#v*.}; minor=${minor%%.*}
  local flags="-s -w" key val pkg
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    # The module proxy does not tell the tag's commit; an empty gitCommit beats
    # the unexpanded "$Format:%H$" placeholder of the source.
    for key in gitVersion=$KUBE_VERSION gitMajor=$major gitMinor=$minor gitTreeState=clean buildDate=$date gitCommit=; do
      val=${key#*=}; key=${key%%=*}
      flags+=" -X $pkg.$key=$val"
    done
  done
  printf '%s' "$flags"
}

ldflags_of() {
  case $1 in
    etcd | kwok) printf '%s' "-s -w" ;;
    *) kube_ldflags ;;
  esac
}

stamp_key() {
  local name=$1 flags=$2
  {
    go env GOVERSION GOOS GOARCH
    printf '%s\n%s\n' "$(package_of "$name")" "$flags"
    if [[ $name != kwok ]]; then cat "$wrapper/go.mod" "$wrapper/go.sum"; fi
  } | sha256sum | cut -d' ' -f1
}

# up_to_date NAME KEY: the binary is there and was built with the same inputs.
up_to_date() {
  local out=$CONTROLPLANE_BIN/$1 stamp=$CONTROLPLANE_BIN/.$1.stamp
  [[ -x $out && -f $stamp && $(<"$stamp") == "$2" ]]
}

build_one() {
  local name=$1 pkg flags key out stamp start tmp
  pkg=$(package_of "$name")
  flags=$(ldflags_of "$name")
  key=$(stamp_key "$name" "$flags")
  out=$CONTROLPLANE_BIN/$name
  stamp=$CONTROLPLANE_BIN/.$name.stamp
  if [[ $rebuild == 0 ]] && up_to_date "$name" "$key"; then
    log "$name is up to date"
    return
  fi
  log "building $name from $pkg"
  start=$(date +%s)
  tmp=$(mktemp -d "$CONTROLPLANE_BIN/.tmp-$name.XXXXXX")
  if [[ $name == kwok ]]; then
    # Outside any module, so go install resolves kwok with its own go.sum.
    (cd "$tmp" && GOBIN=$tmp GOFLAGS='' go install -trimpath -ldflags "$flags" "$pkg")
  else
    (cd "$wrapper" && GOFLAGS=-mod=readonly go build -trimpath -ldflags "$flags" -o "$tmp/$name" "$pkg")
  fi
  mv -f "$tmp/$name" "$out"
  rm -rf "$tmp"
  printf '%s\n' "$key" >"$stamp"
  local secs=$(($(date +%s) - start))
  printf '%s %s %ss\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$name" "$secs" >>"$CONTROLPLANE_BIN/.build-times"
  log "built $name in ${secs}s ($(du -h "$out" | cut -f1))"
}

if ((check)); then
  for name in "${wanted[@]}"; do
    up_to_date "$name" "$(stamp_key "$name" "$(ldflags_of "$name")")" || exit 1
  done
  exit 0
fi
for name in "${wanted[@]}"; do
  build_one "$name"
done
printf '%s\n' "$CONTROLPLANE_BIN"
