#!/usr/bin/env bash
# Starts a Kubernetes control plane on loopback: etcd, kube-apiserver,
# kube-controller-manager, kube-scheduler and kwok, which plays the kubelet for
# two fake nodes, so the pods of a Deployment are scheduled and go Running
# without any container runtime.
#
# State (certificates, kubeconfigs, etcd data, logs, pid files) lives in
#   ${PADDOCK_CACHE:-$HOME/.cache/paddock}/cluster/<name>     (name: paddock)
# Left-over state from an earlier run (a crash, a missing down.sh) is cleaned
# up first, so running up.sh again always yields a fresh cluster.
#
# Prints `export` lines on stdout; everything else goes to stderr:
#   eval "$(e2e/controlplane/up.sh)"    # sets KUBECONFIG, KUBECACHEDIR, PATH
#   kubectl get nodes
#   e2e/controlplane/down.sh
#
# Usage: e2e/controlplane/up.sh [name]     (or PADDOCK_CLUSTER=name)
set -euo pipefail

# shellcheck source=e2e/controlplane/lib.sh
. "$(dirname "$0")/lib.sh"

case ${1:-} in
  -h | --help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
esac
name=${1:-${PADDOCK_CLUSTER:-paddock}}
[[ $name =~ ^[a-z0-9][a-z0-9-]*$ ]] || die "cluster name must be lowercase letters, digits and dashes: '$name'"
state=$(cluster_state_dir "$name")
started_at=$SECONDS

for tool in openssl curl setsid ss base64; do
  command -v "$tool" >/dev/null || die "$tool is required"
done

bin=$("$CONTROLPLANE_DIR/build.sh")

if [[ -e $state ]]; then
  log "cleaning up the previous state of cluster $name"
  "$CONTROLPLANE_DIR/down.sh" "$name"
fi
mkdir -p "$state"/{pki,pids,logs,etcd,kube-controller-manager,kube-scheduler}
chmod 700 "$state" "$state/etcd"

SERVICE_CIDR=10.96.0.0/12
SERVICE_FIRST_IP=10.96.0.1
POD_CIDR=10.244.0.0/16
# Fake nodes need an address; a loopback one would make endpoints of
# hostNetwork pods invalid, so use a private one nothing listens on.
NODE_IP=10.250.0.1

# --- ports -------------------------------------------------------------------
# Free ports are picked at random among those no socket uses right now, below
# the kernel's ephemeral range, so an outgoing connection cannot take one
# between the pick and the bind.
taken=$(ss -Htan | awk '{ sub(/.*:/, "", $4); print $4 }' | sort -u)
port_min=15000
port_max=$(($(awk '{ print $1 }' /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768) - 1))
((port_max - port_min >= 1000)) || port_max=$((port_min + 1000))
pick_port() {
  local p
  for _ in $(seq 200); do
    p=$((port_min + (RANDOM * 32768 + RANDOM) % (port_max - port_min + 1)))
    if ! grep -qx "$p" <<<"$taken"; then
      taken+=$'\n'$p
      printf -v "$1" '%s' "$p"
      return
    fi
  done
  die "no free port found"
}
pick_port ETCD_PORT
pick_port ETCD_PEER_PORT
pick_port APISERVER_PORT
pick_port KCM_PORT
pick_port SCHEDULER_PORT
pick_port KWOK_PORT
APISERVER_URL=https://127.0.0.1:$APISERVER_PORT

# --- certificates --------------------------------------------------------------
pki=$state/pki
# new_cert NAME SUBJECT EXTENSIONS [CA]: a P-256 key and a certificate signed by
# CA (default: the cluster CA).
new_cert() {
  local ca=${4:-ca}
  openssl req -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
    -keyout "$pki/$1.key" -out "$pki/$1.csr" -subj "$2" 2>/dev/null
  openssl x509 -req -in "$pki/$1.csr" -CA "$pki/$ca.crt" -CAkey "$pki/$ca.key" \
    -set_serial "0x$(openssl rand -hex 16)" -days 365 -out "$pki/$1.crt" \
    -extfile <(printf '%b' "$3") 2>/dev/null
  rm -f "$pki/$1.csr"
}
log "generating certificates"
openssl req -x509 -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
  -keyout "$pki/ca.key" -out "$pki/ca.crt" -days 3650 -subj "/CN=paddock-$name-ca" \
  -addext "basicConstraints=critical,CA:TRUE" \
  -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature" 2>/dev/null
client_ext='basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n'
new_cert apiserver "/CN=kube-apiserver" \
  "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectAltName=DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,IP:127.0.0.1,IP:$SERVICE_FIRST_IP\n"
# system:masters is bound to cluster-admin and bypasses RBAC: for people and kwok.
new_cert admin "/O=system:masters/CN=paddock-admin" "$client_ext"
# The identities the bootstrap RBAC policy grants exactly what these need.
new_cert kube-controller-manager "/CN=system:kube-controller-manager" "$client_ext"
new_cert kube-scheduler "/CN=system:kube-scheduler" "$client_ext"
# The front proxy (requestheader) identity: what aggregated API servers trust,
# and what kube-controller-manager and kube-scheduler look up at start.
openssl req -x509 -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
  -keyout "$pki/front-proxy-ca.key" -out "$pki/front-proxy-ca.crt" -days 3650 \
  -subj "/CN=paddock-$name-front-proxy-ca" \
  -addext "basicConstraints=critical,CA:TRUE" \
  -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature" 2>/dev/null
new_cert front-proxy-client "/CN=front-proxy-client" "$client_ext" front-proxy-ca
# ServiceAccount tokens are signed with an RSA key (RS256).
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$pki/sa.key" 2>/dev/null
openssl pkey -in "$pki/sa.key" -pubout -out "$pki/sa.pub"
chmod 600 "$pki"/*.key

# write_kubeconfig FILE CERT: a kubeconfig with the certificates embedded, so it
# stays valid wherever it is copied.
write_kubeconfig() {
  cat >"$1" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: $name
  cluster:
    server: $APISERVER_URL
    certificate-authority-data: $(base64 -w0 "$pki/ca.crt")
users:
- name: $2
  user:
    client-certificate-data: $(base64 -w0 "$pki/$2.crt")
    client-key-data: $(base64 -w0 "$pki/$2.key")
contexts:
- name: $name
  context:
    cluster: $name
    user: $2
current-context: $name
EOF
  chmod 600 "$1"
}
write_kubeconfig "$state/admin.kubeconfig" admin
write_kubeconfig "$state/kube-controller-manager.kubeconfig" kube-controller-manager
write_kubeconfig "$state/kube-scheduler.kubeconfig" kube-scheduler

# --- processes -----------------------------------------------------------------
succeeded=0
# A signal may land while a command runs with stderr sent to /dev/null (the
# polls of wait_for); the exit trap then inherits that redirection. Keep the
# real stderr on fd 3 for it.
exec 3>&2
on_exit() {
  exec 2>&3
  if [[ $succeeded == 0 ]]; then
    log "start-up failed; stopping what was started. Logs: $state/logs"
    stop_components "$state"
  fi
}
trap on_exit EXIT
trap 'exit 130' INT TERM

# start COMPONENT ARGS...: runs the component's binary in a new session (so its
# process group can be signalled as a whole), logging to logs/COMPONENT.log.
# Every other inherited descriptor is closed first: a daemon holding the write
# end of our caller's pipe (fd 3 here, or one from further up) would keep
# `up.sh 2>&1 | ...` waiting after up.sh has exited.
start() {
  local comp=$1
  shift
  (
    for fd in /proc/"$BASHPID"/fd/*; do
      fd=${fd##*/}
      if ((fd > 2)); then eval "exec $fd>&-" 2>/dev/null || true; fi
    done
    exec setsid "$bin/$comp" "$@" >"$state/logs/$comp.log" 2>&1 </dev/null
  ) &
  printf '%s\n' "$!" >"$state/pids/$comp.pid"
  printf '%s\n' "$bin/$comp" >"$state/pids/$comp.bin"
}

fail() {
  log "error: $*"
  local comp
  for comp in "${COMPONENTS[@]}"; do
    [[ -s $state/logs/$comp.log ]] || continue
    log "--- last lines of $comp.log"
    tail -n 15 "$state/logs/$comp.log" >&2
  done
  exit 1
}

# wait_for WHAT SECONDS COMMAND...: polls COMMAND until it succeeds; stops early
# when a component has died.
wait_for() {
  local what=$1 deadline=$((SECONDS + $2)) comp
  shift 2
  until "$@" >/dev/null 2>&1; do
    for comp in "${COMPONENTS[@]}"; do
      if [[ -f $state/pids/$comp.pid ]] && ! process_alive "$(<"$state/pids/$comp.pid")"; then
        fail "$comp exited while waiting for $what"
      fi
    done
    ((SECONDS < deadline)) || fail "timed out after $2s waiting for $what"
    sleep 0.2
  done
}

kubectl() {
  KUBECACHEDIR=$state/cache "$bin/kubectl" --kubeconfig "$state/admin.kubeconfig" --request-timeout=10s "$@"
}
# A server can accept a connection long before it answers (the apiserver does
# while it still waits for etcd), so every poll has a time limit.
curl() { command curl --max-time 3 "$@"; }
curl_admin() {
  curl -fsS --cacert "$pki/ca.crt" --cert "$pki/admin.crt" --key "$pki/admin.key" "$@"
}

log "starting etcd $ETCD_VERSION on 127.0.0.1:$ETCD_PORT"
# --unsafe-no-fsync: a throw-away test cluster does not need durable writes,
# and fsync on a busy disk slows every apiserver write down.
start etcd \
  --name="$name" \
  --data-dir="$state/etcd" \
  --listen-client-urls="http://127.0.0.1:$ETCD_PORT" \
  --advertise-client-urls="http://127.0.0.1:$ETCD_PORT" \
  --listen-peer-urls="http://127.0.0.1:$ETCD_PEER_PORT" \
  --initial-advertise-peer-urls="http://127.0.0.1:$ETCD_PEER_PORT" \
  --initial-cluster="$name=http://127.0.0.1:$ETCD_PEER_PORT" \
  --unsafe-no-fsync \
  --log-level=warn
wait_for "etcd health" 30 curl -fsS "http://127.0.0.1:$ETCD_PORT/health"

log "starting kube-apiserver $KUBE_VERSION on $APISERVER_URL"
start kube-apiserver \
  --etcd-servers="http://127.0.0.1:$ETCD_PORT" \
  --bind-address=127.0.0.1 \
  --advertise-address=127.0.0.1 \
  --secure-port="$APISERVER_PORT" \
  --cert-dir="$state/pki" \
  --tls-cert-file="$pki/apiserver.crt" \
  --tls-private-key-file="$pki/apiserver.key" \
  --client-ca-file="$pki/ca.crt" \
  --requestheader-client-ca-file="$pki/front-proxy-ca.crt" \
  --requestheader-allowed-names=front-proxy-client \
  --requestheader-username-headers=X-Remote-User \
  --requestheader-group-headers=X-Remote-Group \
  --requestheader-extra-headers-prefix=X-Remote-Extra- \
  --proxy-client-cert-file="$pki/front-proxy-client.crt" \
  --proxy-client-key-file="$pki/front-proxy-client.key" \
  --service-account-issuer=https://kubernetes.default.svc.cluster.local \
  --service-account-key-file="$pki/sa.pub" \
  --service-account-signing-key-file="$pki/sa.key" \
  --service-cluster-ip-range="$SERVICE_CIDR" \
  --authorization-mode=Node,RBAC \
  --allow-privileged=true \
  --endpoint-reconciler-type=none \
  --profiling=false
wait_for "kube-apiserver /readyz" 90 curl_admin "$APISERVER_URL/readyz"

log "starting kube-controller-manager on 127.0.0.1:$KCM_PORT"
start kube-controller-manager \
  --kubeconfig="$state/kube-controller-manager.kubeconfig" \
  --authentication-kubeconfig="$state/kube-controller-manager.kubeconfig" \
  --authorization-kubeconfig="$state/kube-controller-manager.kubeconfig" \
  --authorization-always-allow-paths=/healthz,/readyz,/livez,/metrics \
  --bind-address=127.0.0.1 \
  --secure-port="$KCM_PORT" \
  --cert-dir="$state/kube-controller-manager" \
  --leader-elect=false \
  --controllers='*' \
  --use-service-account-credentials=true \
  --service-account-private-key-file="$pki/sa.key" \
  --root-ca-file="$pki/ca.crt" \
  --cluster-signing-cert-file="$pki/ca.crt" \
  --cluster-signing-key-file="$pki/ca.key" \
  --service-cluster-ip-range="$SERVICE_CIDR" \
  --flex-volume-plugin-dir="$state/kube-controller-manager/flexvolume" \
  --profiling=false

log "starting kube-scheduler on 127.0.0.1:$SCHEDULER_PORT"
start kube-scheduler \
  --kubeconfig="$state/kube-scheduler.kubeconfig" \
  --authentication-kubeconfig="$state/kube-scheduler.kubeconfig" \
  --authorization-kubeconfig="$state/kube-scheduler.kubeconfig" \
  --authorization-always-allow-paths=/healthz,/readyz,/livez,/metrics \
  --bind-address=127.0.0.1 \
  --secure-port="$SCHEDULER_PORT" \
  --cert-dir="$state/kube-scheduler" \
  --leader-elect=false \
  --profiling=false

log "starting kwok $KWOK_VERSION"
# Node leases are the heartbeat kube-controller-manager watches. Without them (kwok's default)
# a node's only heartbeat is the status stage, every 10 minutes or so: the node lifecycle
# controller declares the nodes NotReady after its grace period (50 s), marks their pods not
# Ready, and kwok turns the nodes Ready again but never the pods, so every Deployment loses
# its ready replicas about a minute after it started. kwokctl sets 40 s, as here.
start kwok \
  --kubeconfig="$state/admin.kubeconfig" \
  --config="$CONTROLPLANE_DIR/kwok-stages.yaml" \
  --manage-all-nodes=true \
  --node-lease-duration-seconds=40 \
  --cidr="$POD_CIDR" \
  --node-ip="$NODE_IP" \
  --server-address="127.0.0.1:$KWOK_PORT"

wait_for "kube-controller-manager /healthz" 60 curl -fsSk "https://127.0.0.1:$KCM_PORT/healthz"
wait_for "kube-scheduler /healthz" 60 curl -fsSk "https://127.0.0.1:$SCHEDULER_PORT/healthz"
wait_for "kwok /healthz" 60 curl -fsS "http://127.0.0.1:$KWOK_PORT/healthz"

# --- nodes ---------------------------------------------------------------------
# Two fake nodes, without the NoSchedule taint of the kwok docs, so pods
# schedule without tolerations. kwok manages every node (--manage-all-nodes);
# the annotation marks them as fake for anyone reading the objects.
log "creating nodes"
for i in 0 1; do
  cat <<EOF
---
apiVersion: v1
kind: Node
metadata:
  name: kwok-node-$i
  annotations:
    kwok.x-k8s.io/node: fake
    node.alpha.kubernetes.io/ttl: "0"
  labels:
    kubernetes.io/arch: amd64
    kubernetes.io/hostname: kwok-node-$i
    kubernetes.io/os: linux
    kubernetes.io/role: agent
    node-role.kubernetes.io/agent: ""
    type: kwok
status:
  allocatable: {cpu: "64", memory: 256Gi, pods: "250", ephemeral-storage: 1Ti}
  capacity: {cpu: "64", memory: 256Gi, pods: "250", ephemeral-storage: 1Ti}
  nodeInfo:
    architecture: amd64
    kubeletVersion: $KUBE_VERSION
    operatingSystem: linux
EOF
done | kubectl apply -f - >&2

wait_for "nodes to be Ready" 60 kubectl wait --for=condition=Ready node --all --timeout=1s
wait_for "the default ServiceAccount" 60 kubectl -n default get serviceaccount default

cat >"$state/env" <<EOF
# Written by up.sh for cluster $name.
APISERVER_URL=$APISERVER_URL
ETCD_URL=http://127.0.0.1:$ETCD_PORT
KUBE_CONTROLLER_MANAGER_URL=https://127.0.0.1:$KCM_PORT
KUBE_SCHEDULER_URL=https://127.0.0.1:$SCHEDULER_PORT
KWOK_URL=http://127.0.0.1:$KWOK_PORT
KUBE_VERSION=$KUBE_VERSION
BIN=$bin
EOF
succeeded=1
log "cluster $name is up at $APISERVER_URL in $((SECONDS - started_at))s"
"$CONTROLPLANE_DIR/env.sh" "$name"
