#!/usr/bin/env bash
# The real Kubernetes control plane for tests, on loopback: etcd,
# kube-apiserver, kube-controller-manager and kube-scheduler, built from
# their Go modules (hack/cluster/kube, hack/cluster/etcd) and cached by
# version. By default no kubelet: Nodes are API objects (`node`), pods are
# scheduled but never run. With `up DIR --kubelets` the control plane is
# ready for real nodes (hack/node.sh): the apiserver also listens on this
# machine's address and advertises it as the `kubernetes` Service's endpoint
# (pods reach it as 10.96.0.1:443 with in-cluster config), and the workload
# and node-lifecycle controllers run. See hack/README.md ("The real control
# plane", "Real nodes").
#
# Usage:
#   hack/cluster.sh build                    build the binaries once (cached), print their directory
#   hack/cluster.sh build-node               build kubelet and kube-proxy once (cached), print their directory
#   hack/cluster.sh up DIR [--kubelets] [--pod-security-default LEVEL]
#                                            start everything, write DIR/kubeconfig (cluster admin);
#                                            --kubelets: serve real nodes (hack/node.sh);
#                                            --pod-security-default: PodSecurity admission enforces
#                                            LEVEL (baseline, restricted) in namespaces without an
#                                            enforce label, as hardened clusters configure it
#   hack/cluster.sh down DIR                 stop what `up DIR` started, by pid
#   hack/cluster.sh token DIR NS SA          print a kubeconfig authenticating as ServiceAccount NS/SA
#   hack/cluster.sh kubelet-kubeconfig DIR NAME SERVER
#                                            print a kubeconfig for the kubelet of Node NAME (system:node:NAME)
#   hack/cluster.sh node DIR NAME [HOSTNAME] make a Ready, schedulable Node (hostname label defaults to NAME)
#   hack/cluster.sh restart DIR              restart kube-apiserver (same flags and data)
#   hack/cluster.sh compact DIR              compact etcd's history to now (older watches get 410)
#   hack/cluster.sh version                  print the pinned Kubernetes and etcd versions
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# The pinned versions are the ones the Go modules require.
module_version() { grep -oE "$1 v[0-9][0-9.]*" "$2" | head -1 | cut -d' ' -f2; }
KUBE_VERSION=$(module_version 'k8s\.io/kubernetes' "$root/hack/cluster/kube/go.mod")
ETCD_VERSION=$(module_version 'go\.etcd\.io/etcd/server/v3' "$root/hack/cluster/etcd/go.mod")
[ -n "$KUBE_VERSION" ] && [ -n "$ETCD_VERSION" ] || { echo "cluster.sh: no version pinned in hack/cluster/*/go.mod" >&2; exit 1; }
cache=${EXTERNAL_STORAGE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/external-storage}
kube_bin=$cache/kube-$KUBE_VERSION
etcd_bin=$cache/etcd-$ETCD_VERSION
node_bin=$cache/kube-node-$KUBE_VERSION

die() { echo "cluster.sh: $*" >&2; exit 1; }
log() { echo "cluster.sh: $*" >&2; }

# go build with one progress line per 250 packages compiled (go build -v
# names each package as it builds it).
go_build() {
  local module=$1 out=$2 ldflags=$3
  shift 3
  local start=$SECONDS tmp="$out.tmp.$$"
  rm -rf "$tmp" && mkdir -p "$tmp"
  (cd "$module" && go build -v -trimpath -ldflags "$ldflags" -o "$tmp/" "$@") 2>&1 |
    awk -v what="$(basename "$out")" -v start="$start" '
      /^(#|go: |[^ ]*\.go:)/ { print; next }
      { n++; if (n % 250 == 0) { printf "cluster.sh: %s: %d packages compiled\n", what, n; fflush() } }
      END { printf "cluster.sh: %s: %d packages compiled in all\n", what, n }' >&2
  [ "${PIPESTATUS[0]}" -eq 0 ] || { rm -rf "$tmp"; die "building $(basename "$out") failed (output above)"; }
  rm -rf "$out" && mv "$tmp" "$out"
  log "$(basename "$out") built in $((SECONDS - start)) s"
}

# -X flags that give the binaries their release version (a module build has none).
version_ldflags() {
  local minor=${KUBE_VERSION#v1.}
  minor=${minor%%.*}
  local pkg x=""
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    x+=" -X $pkg.gitVersion=$KUBE_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
    x+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
  done
  printf '%s' "$x"
}

build() {
  command -v go >/dev/null || die "go not found: the control plane is built from its Go modules (Go 1.24+)"
  if [ ! -x "$kube_bin/kube-apiserver" ] || [ ! -x "$kube_bin/kube-controller-manager" ] ||
    [ ! -x "$kube_bin/kube-scheduler" ]; then
    log "building Kubernetes $KUBE_VERSION (kube-apiserver, kube-controller-manager, kube-scheduler) from the Go module proxy into $kube_bin; a cold build takes many minutes on 2 cores"
    go_build "$root/hack/cluster/kube" "$kube_bin" "-s -w$(version_ldflags)" \
      k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
      k8s.io/kubernetes/cmd/kube-scheduler
  fi
  if [ ! -x "$etcd_bin/etcd" ]; then
    log "building etcd $ETCD_VERSION from the Go module proxy into $etcd_bin"
    go_build "$root/hack/cluster/etcd" "$etcd_bin" "-s -w" go.etcd.io/etcd/server/v3
    mv "$etcd_bin/server" "$etcd_bin/etcd"
  fi
}

# The IPv4 address this machine reaches the network from (its default route's source).
machine_ip() {
  ip -4 route get 1.1.1.1 2>/dev/null | awk '{ for (i = 1; i < NF; i++) if ($i == "src") { print $(i + 1); exit } }' | grep .
}

# The node binaries (kubelet, kube-proxy) of the same release, for hack/node.sh,
# in their own cache directory.
build_node() {
  command -v go >/dev/null || die "go not found: the node binaries are built from their Go modules (Go 1.24+)"
  [ -x "$node_bin/kubelet" ] && [ -x "$node_bin/kube-proxy" ] && return 0
  log "building Kubernetes $KUBE_VERSION (kubelet, kube-proxy) from the Go module proxy into $node_bin"
  go_build "$root/hack/cluster/kube" "$node_bin" "-s -w$(version_ldflags)" \
    k8s.io/kubernetes/cmd/kubelet k8s.io/kubernetes/cmd/kube-proxy
}

# A port that is free now, below the kernel's ephemeral range: the ports are
# chosen before the components start, and one from that range (what a bind
# to port 0 returns) can meanwhile become the local end of any outgoing
# connection (CI saw kube-controller-manager refused "address already in use").
free_port() {
  python3 - <<'PY'
import random, socket, sys
low = int(open("/proc/sys/net/ipv4/ip_local_port_range").read().split()[0])
for _ in range(500):
    port = random.randrange(10000, max(low, 10001))
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", port))
    except OSError:
        continue
    finally:
        s.close()
    print(port)
    sys.exit(0)
sys.exit("no free port below the ephemeral range")
PY
}

# wait_healthy NAME URL PIDFILE [CURL ARGS...]: polls URL until it answers
# "ok", failing early (with the log's tail) if the process died.
wait_healthy() {
  local name=$1 url=$2 pidfile=$3
  shift 3
  local deadline=$((SECONDS + 120))
  until [ "$(curl -fsS --max-time 2 "$@" "$url" 2>/dev/null)" = ok ]; do
    if ! kill -0 "$(cat "$pidfile")" 2>/dev/null; then
      tail -n 30 "$dir/$name.log" >&2
      die "$name exited while starting (log: $dir/$name.log)"
    fi
    [ $SECONDS -lt $deadline ] || { tail -n 30 "$dir/$name.log" >&2; die "$name not healthy after 120 s"; }
    sleep 0.2
  done
}

# start NAME CMD...: runs CMD in the background with its log in DIR/NAME.log
# (appended: a restart keeps the earlier log), its pid in DIR/NAME.pid and
# its command line in DIR/NAME.cmd (for `restart`).
start() {
  local name=$1
  shift
  printf '%q ' "$@" >"$dir/$name.cmd"
  "$@" >>"$dir/$name.log" 2>&1 &
  echo $! >"$dir/$name.pid"
}

# stop_pid PID [GRACE]: SIGTERM, then SIGKILL after GRACE seconds (20).
stop_pid() {
  local pid=$1 deadline=$((SECONDS + ${2:-20}))
  kill "$pid" 2>/dev/null || return 0
  while kill -0 "$pid" 2>/dev/null; do
    if [ $SECONDS -ge $deadline ]; then kill -9 "$pid" 2>/dev/null || true; return 0; fi
    sleep 0.1
  done
}

# A kubeconfig for the API server at 127.0.0.1:$port with the user's
# credentials given as kubectl config arguments.
write_kubeconfig() {
  local file=$1 port=$2
  shift 2
  rm -f "$file"
  kubectl config --kubeconfig "$file" set-cluster local --server "https://127.0.0.1:$port" \
    --certificate-authority "$dir/pki/ca.crt" --embed-certs >/dev/null
  kubectl config --kubeconfig "$file" set-credentials user "$@" >/dev/null
  kubectl config --kubeconfig "$file" set-context local --cluster local --user user >/dev/null
  kubectl config --kubeconfig "$file" use-context local >/dev/null
}

pki() {
  local p=$dir/pki
  mkdir -p "$p"
  openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj /CN=external-storage-test-ca \
    -keyout "$p/ca.key" -out "$p/ca.crt" 2>/dev/null
  cert() { # name subject [extensions]
    openssl req -newkey rsa:2048 -nodes -subj "$2" -keyout "$p/$1.key" -out "$p/$1.csr" 2>/dev/null
    openssl x509 -req -in "$p/$1.csr" -CA "$p/ca.crt" -CAkey "$p/ca.key" -CAcreateserial \
      -days 3650 -out "$p/$1.crt" -extfile <(printf '%s\n' "${3:-basicConstraints=CA:FALSE}") 2>/dev/null
  }
  # 10.96.0.1 is the `kubernetes` Service (the first address of
  # --service-cluster-ip-range): what in-cluster clients dial.
  local san="subjectAltName=IP:127.0.0.1,IP:10.96.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default"
  san+=",DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
  [ -z "${host_ip:-}" ] || san+=",IP:$host_ip"
  cert apiserver /CN=kube-apiserver "$san"
  cert admin "/O=system:masters/CN=cluster-admin"
  openssl genrsa -out "$p/sa.key" 2048 2>/dev/null
  openssl rsa -in "$p/sa.key" -pubout -out "$p/sa.pub" 2>/dev/null
}

up() {
  [ -n "${dir:-}" ] || die "usage: hack/cluster.sh up DIR"
  command -v kubectl >/dev/null || die "kubectl not found (hack/install-kubectl.sh installs it)"
  command -v openssl >/dev/null || die "openssl not found"
  if [ -f "$dir/apiserver.pid" ] && kill -0 "$(cat "$dir/apiserver.pid")" 2>/dev/null; then
    die "a cluster is already running in $dir (hack/cluster.sh down $dir)"
  fi
  build
  local t0=$SECONDS
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  rm -rf "$dir/etcd-data" "$dir/pki" "$dir"/*.log "$dir"/*.pid "$dir/host-ip"
  # Real nodes' pods reach the apiserver through the `kubernetes` Service,
  # whose endpoint is the advertised address: loopback cannot be one (the
  # apiserver refuses to advertise it), so serve on this machine's address.
  local bind=127.0.0.1 advertise=127.0.0.1 kubelet_flags=()
  if [ "$kubelets" = 1 ]; then
    host_ip=$(machine_ip) || die "--kubelets: no IPv4 address with a default route on this machine"
    echo "$host_ip" >"$dir/host-ip"
    bind=0.0.0.0 advertise=$host_ip
    # kubectl logs/exec: the apiserver dials the kubelet at the Node's
    # address (its name resolves nowhere) with the admin certificate.
    kubelet_flags=(--kubelet-preferred-address-types InternalIP,Hostname
      --kubelet-client-certificate "$dir/pki/admin.crt" --kubelet-client-key "$dir/pki/admin.key")
  fi
  pki

  local etcd_port etcd_peer api_port kcm_port sched_port
  etcd_port=$(free_port) etcd_peer=$(free_port) api_port=$(free_port)
  kcm_port=$(free_port) sched_port=$(free_port)
  echo "$api_port" >"$dir/apiserver.port"
  echo "$etcd_port" >"$dir/etcd.port"

  # Tests only: no fsync (a test cluster's data is thrown away).
  start etcd "$etcd_bin/etcd" --name test --data-dir "$dir/etcd-data" \
    --listen-client-urls "http://127.0.0.1:$etcd_port" --advertise-client-urls "http://127.0.0.1:$etcd_port" \
    --listen-peer-urls "http://127.0.0.1:$etcd_peer" --initial-advertise-peer-urls "http://127.0.0.1:$etcd_peer" \
    --initial-cluster "test=http://127.0.0.1:$etcd_peer" --listen-metrics-urls "" \
    --unsafe-no-fsync --log-level warn
  wait_healthy etcd "http://127.0.0.1:$etcd_port/health" "$dir/etcd.pid" -o /dev/null -w ok

  # Every request is audited at Metadata level: the e2e fixture reads the
  # real authorizer's verdicts (403s) for the provisioner's ServiceAccount.
  cat >"$dir/audit-policy.yaml" <<'YAML'
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
- level: Metadata
YAML
  # Privileged containers are allowed, as kubeadm and the distributions
  # allow them (the binary's default refuses them); PodSecurity admission
  # decides per namespace. The default admission plugins stay on (they include
  # StorageObjectInUseProtection, DefaultStorageClass, ServiceAccount,
  # TaintNodesByCondition); none is disabled.
  # PodSecurity admission is always on; by default it enforces `privileged`
  # (nothing) where a namespace has no label. --pod-security-default sets
  # what hardened clusters set in their admission configuration.
  local admission_flags=()
  if [ -n "$pod_security_default" ]; then
    cat >"$dir/admission.yaml" <<YAML
apiVersion: apiserver.config.k8s.io/v1
kind: AdmissionConfiguration
plugins:
- name: PodSecurity
  configuration:
    apiVersion: pod-security.admission.config.k8s.io/v1
    kind: PodSecurityConfiguration
    defaults:
      enforce: $pod_security_default
      enforce-version: latest
      warn: $pod_security_default
      warn-version: latest
    exemptions: {usernames: [], runtimeClasses: [], namespaces: [kube-system]}
YAML
    admission_flags=(--admission-control-config-file "$dir/admission.yaml")
  fi
  start apiserver "$kube_bin/kube-apiserver" \
    --etcd-servers "http://127.0.0.1:$etcd_port" \
    --bind-address "$bind" --advertise-address "$advertise" --secure-port "$api_port" \
    --tls-cert-file "$dir/pki/apiserver.crt" --tls-private-key-file "$dir/pki/apiserver.key" \
    --client-ca-file "$dir/pki/ca.crt" \
    --authorization-mode Node,RBAC \
    --service-account-issuer https://kubernetes.default.svc.cluster.local \
    --service-account-key-file "$dir/pki/sa.pub" --service-account-signing-key-file "$dir/pki/sa.key" \
    --service-cluster-ip-range 10.96.0.0/16 \
    --enable-admission-plugins StorageObjectInUseProtection,DefaultStorageClass \
    --audit-policy-file "$dir/audit-policy.yaml" --audit-log-path "$dir/audit.log" \
    --audit-log-format json --audit-log-mode blocking \
    "${kubelet_flags[@]}" "${admission_flags[@]}" --allow-privileged=true --profiling=false
  write_kubeconfig "$dir/kubeconfig" "$api_port" \
    --client-certificate "$dir/pki/admin.crt" --client-key "$dir/pki/admin.key" --embed-certs
  wait_healthy apiserver "https://127.0.0.1:$api_port/readyz" "$dir/apiserver.pid" \
    --cacert "$dir/pki/ca.crt" --cert "$dir/pki/admin.crt" --key "$dir/pki/admin.key"

  # The controllers a storage provisioner meets. Without --kubelets no
  # node-lifecycle controller: Nodes made by `node` stay Ready without a
  # kubelet. With it, what real nodes need: the workload controllers that
  # turn the shipped DaemonSets, Deployments and StatefulSets into pods, the
  # node lifecycle (lifts the not-ready taint once a kubelet reports Ready),
  # Service endpoints (kube-proxy), pod garbage collection and attach/detach.
  local controllers=persistentvolume-binder-controller,persistentvolume-expander-controller
  controllers+=,persistentvolume-protection-controller,persistentvolumeclaim-protection-controller
  controllers+=,garbage-collector-controller,namespace-controller
  controllers+=,serviceaccount-controller,serviceaccount-token-controller
  controllers+=,root-ca-certificate-publisher-controller,clusterrole-aggregation-controller
  if [ "$kubelets" = 1 ]; then
    controllers+=,daemonset-controller,replicaset-controller,deployment-controller,statefulset-controller
    controllers+=,node-lifecycle-controller,taint-eviction-controller,endpoints-controller
    controllers+=,endpointslice-controller,pod-garbage-collector-controller
    controllers+=,persistentvolume-attach-detach-controller
  fi
  start controller-manager "$kube_bin/kube-controller-manager" \
    --kubeconfig "$dir/kubeconfig" --controllers "$controllers" \
    --bind-address 127.0.0.1 --secure-port "$kcm_port" --leader-elect=false \
    --service-account-private-key-file "$dir/pki/sa.key" --root-ca-file "$dir/pki/ca.crt" \
    --kube-api-qps "${KCM_KUBE_API_QPS:-20}" --kube-api-burst "${KCM_KUBE_API_BURST:-30}" \
    --profiling=false
  start scheduler "$kube_bin/kube-scheduler" \
    --kubeconfig "$dir/kubeconfig" --bind-address 127.0.0.1 --secure-port "$sched_port" \
    --leader-elect=false --profiling=false
  wait_healthy controller-manager "https://127.0.0.1:$kcm_port/healthz" "$dir/controller-manager.pid" -k
  wait_healthy scheduler "https://127.0.0.1:$sched_port/healthz" "$dir/scheduler.pid" -k

  # Pods need their namespace's `default` ServiceAccount (ServiceAccount
  # admission); the serviceaccount controller makes it shortly after start.
  local deadline=$((SECONDS + 60))
  until KUBECONFIG=$dir/kubeconfig kubectl get serviceaccount default -n default >/dev/null 2>&1; do
    [ $SECONDS -lt $deadline ] || die "ServiceAccount default/default not created within 60 s"
    sleep 0.2
  done
  log "Kubernetes $KUBE_VERSION up in $((SECONDS - t0)) s: KUBECONFIG=$dir/kubeconfig (logs and pids in $dir)"
}

down() {
  [ -n "${dir:-}" ] || die "usage: hack/cluster.sh down DIR"
  local name pid stopped=()
  for name in scheduler controller-manager apiserver etcd; do
    [ -f "$dir/$name.pid" ] || continue
    pid=$(cat "$dir/$name.pid")
    kill -0 "$pid" 2>/dev/null && stopped+=("$pid")
    kill "$pid" 2>/dev/null || true
    rm -f "$dir/$name.pid"
  done
  for pid in "${stopped[@]}"; do stop_pid "$pid"; done
  log "stopped ${#stopped[@]} processes of $dir"
}

# Restarts kube-apiserver (same flags, same etcd data): clients see their
# connections cut and watches end, and the restarted watch cache starts its
# window at the current revision.
restart() {
  [ -n "${dir:-}" ] && [ -f "$dir/apiserver.cmd" ] || die "usage: hack/cluster.sh restart DIR (of a running cluster)"
  # A short grace: a graceful apiserver shutdown waits for its watches.
  stop_pid "$(cat "$dir/apiserver.pid")" 2
  local cmd
  cmd=$(cat "$dir/apiserver.cmd")
  eval "start apiserver $cmd"
  wait_healthy apiserver "https://127.0.0.1:$(cat "$dir/apiserver.port")/readyz" "$dir/apiserver.pid" \
    --cacert "$dir/pki/ca.crt" --cert "$dir/pki/admin.crt" --key "$dir/pki/admin.key"
  log "kube-apiserver restarted"
}

token() {
  local ns=${1:-} sa=${2:-}
  [ -n "${dir:-}" ] && [ -n "$ns" ] && [ -n "$sa" ] || die "usage: hack/cluster.sh token DIR NAMESPACE SERVICEACCOUNT"
  local tok file
  tok=$(KUBECONFIG=$dir/kubeconfig kubectl create token "$sa" -n "$ns" --duration 24h) ||
    die "TokenRequest for ServiceAccount $ns/$sa failed (does it exist?)"
  file=$(mktemp "$dir/token-XXXXXX")
  write_kubeconfig "$file" "$(cat "$dir/apiserver.port")" --token "$tok"
  cat "$file"
  rm -f "$file"
}

# A kubeconfig for the kubelet of Node NAME: a client certificate in group
# system:nodes as system:node:NAME (the Node authorizer's identity), for the
# apiserver at SERVER (an address the node can reach).
kubelet_kubeconfig() {
  local name=${1:-} server=${2:-}
  [ -n "${dir:-}" ] && [ -n "$name" ] && [ -n "$server" ] ||
    die "usage: hack/cluster.sh kubelet-kubeconfig DIR NAME SERVER"
  local p=$dir/pki file
  openssl req -newkey rsa:2048 -nodes -subj "/O=system:nodes/CN=system:node:$name" \
    -keyout "$p/kubelet-$name.key" -out "$p/kubelet-$name.csr" 2>/dev/null
  openssl x509 -req -in "$p/kubelet-$name.csr" -CA "$p/ca.crt" -CAkey "$p/ca.key" -CAcreateserial \
    -days 3650 -out "$p/kubelet-$name.crt" 2>/dev/null
  file=$(mktemp "$dir/kubelet-XXXXXX")
  write_kubeconfig "$file" "$(cat "$dir/apiserver.port")" \
    --client-certificate "$p/kubelet-$name.crt" --client-key "$p/kubelet-$name.key" --embed-certs
  kubectl config --kubeconfig "$file" set-cluster local --server "$server" >/dev/null
  cat "$file"
  rm -f "$file"
}

node() {
  local name=${1:-} hostname=${2:-${1:-}}
  [ -n "${dir:-}" ] && [ -n "$name" ] || die "usage: hack/cluster.sh node DIR NAME [HOSTNAME-LABEL]"
  export KUBECONFIG=$dir/kubeconfig
  kubectl apply -f - >/dev/null <<YAML
apiVersion: v1
kind: Node
metadata:
  name: $name
  labels: {kubernetes.io/hostname: "$hostname", kubernetes.io/os: linux}
YAML
  # TaintNodesByCondition admission taints a new Node not-ready; the node
  # lifecycle controller (not run here) would lift it once the kubelet
  # reports Ready. This command plays the kubelet's part, once: the Node
  # stays Ready because nothing here ever marks it otherwise.
  kubectl patch node "$name" --type merge -p '{"spec":{"taints":null}}' >/dev/null
  local now
  now=$(date -u +%Y-%m-%dT%H:%M:%SZ)
  kubectl patch node "$name" --subresource status --type merge -p "$(cat <<JSON
{"status": {
  "capacity": {"cpu": "8", "memory": "32Gi", "pods": "110", "ephemeral-storage": "100Gi"},
  "allocatable": {"cpu": "8", "memory": "32Gi", "pods": "110", "ephemeral-storage": "100Gi"},
  "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
    "message": "node made by hack/cluster.sh", "lastHeartbeatTime": "$now", "lastTransitionTime": "$now"}]
}}
JSON
)" >/dev/null
  log "node $name (kubernetes.io/hostname=$hostname) Ready"
}

# Compacts etcd to its current revision through its JSON gateway, as the
# apiserver's periodic compaction does (every 5 minutes): a watch from an
# older resourceVersion is then answered 410 Gone.
compact() {
  [ -n "${dir:-}" ] || die "usage: hack/cluster.sh compact DIR"
  local url rev
  url=http://127.0.0.1:$(cat "$dir/etcd.port")
  rev=$(curl -fsS -X POST "$url/v3/kv/range" -d '{"key": "AA=="}' |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["header"]["revision"])')
  curl -fsS -X POST "$url/v3/kv/compaction" -d "{\"revision\": \"$rev\", \"physical\": true}" >/dev/null
  log "etcd compacted to revision $rev"
}

cmd=${1:-}
dir=${2:-}
kubelets=0
pod_security_default=
case "$cmd" in
  build) build && echo "$kube_bin $etcd_bin" ;;
  build-node) build_node && echo "$node_bin" ;;
  up)
    set -- "${@:3}"
    while [ $# -gt 0 ]; do
      case "$1" in
        --kubelets) kubelets=1 ;;
        --pod-security-default)
          case "${2:-}" in
            baseline | restricted | privileged) pod_security_default=$2 ;;
            *) die "--pod-security-default: privileged, baseline or restricted, not '${2:-}'" ;;
          esac
          shift
          ;;
        *) die "usage: hack/cluster.sh up DIR [--kubelets] [--pod-security-default LEVEL]" ;;
      esac
      shift
    done
    up
    ;;
  kubelet-kubeconfig) kubelet_kubeconfig "${@:3}" ;;
  down) down ;;
  token) token "${@:3}" ;;
  node) node "${@:3}" ;;
  compact) compact ;;
  restart) restart ;;
  version) echo "kubernetes $KUBE_VERSION etcd $ETCD_VERSION" ;;
  *) sed -n '/^# Usage:/,/^set -euo/p' "$0" | sed '$d' >&2; exit 2 ;;
esac
