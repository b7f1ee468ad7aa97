#!/usr/bin/env bash
# A real Kubernetes node directly on this machine, for tests and the demo:
# containerd and runc (Debian's packages), the CNI bridge, host-local and
# portmap plugins, and a kubelet and kube-proxy built from the same
# k8s.io/kubernetes module as the control plane (hack/cluster.sh build-node).
# It joins a control plane started with `hack/cluster.sh up DIR --kubelets`,
# runs what deploy/ ships as pods, and mounts their volumes into workload pods.
#
# One node per machine: its kubelet uses the standard root directory
# /var/lib/kubelet (so what the shipped manifests expect there, like the nfs
# seccomp profile, is where they expect it) and the standard ports. containerd
# and the kubelet run in a mount namespace of their own whose / is rshared
# (this machine's / is private, and the kubelet needs mount propagation): the
# volumes they mount are seen there, not in the caller's namespace;
# `hack/node.sh exec DIR CMD` runs a command in it. Pod logs are in
# /var/log/pods, as on any node.
#
# This machine withholds CAP_SYS_RESOURCE, so containerd runs with
# restrict_oom_score_adj (runc cannot lower a sandbox's oom_score_adj), and
# a container that adds SYS_RESOURCE cannot start here.
#
# Usage:
#   hack/node.sh build                 kubelet + kube-proxy, the offline pause and busybox images (all cached)
#   hack/node.sh up DIR NAME           start node NAME for the control plane in DIR; waits until it is Ready
#   hack/node.sh down DIR              stop it: pods' containers, kubelet, containerd, kube-proxy's rules, the bridge
#   hack/node.sh import DIR ARCHIVE NAME...
#                                      import an OCI archive into the node's containerd, tagged as each NAME
#   hack/node.sh exec DIR CMD...       run CMD in the node's mount namespace (where the kubelet's mounts are)
#   hack/node.sh logs DIR [NAMESPACE]  print the last lines of every container log of the node's pods
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cache=${EXTERNAL_STORAGE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/external-storage}
# The offline images: a pause image for containerd's sandboxes, and busybox
# (Debian's busybox-static) under the name the examples use.
images=$cache/node-images-v1
PAUSE_IMAGE=localhost/external-storage/pause:1
BUSYBOX_IMAGE=docker.io/library/busybox:1.36
KUBELET_ROOT=/var/lib/kubelet
STATE=/var/lib/external-storage-node
RUN=/run/external-storage-node
SOCK=$RUN/containerd.sock
BRIDGE=esnode0
POD_CIDR=10.244.0.0/24
CLUSTER_CIDR=10.244.0.0/16

die() { echo "node.sh: $*" >&2; exit 1; }
log() { echo "node.sh: $*" >&2; }
ctr_() { ctr -a "$SOCK" -n k8s.io "$@"; }

# The Debian packages a node needs, installed when missing.
install_packages() {
  local p missing=()
  for p in containerd runc containernetworking-plugins iptables conntrack busybox-static buildah gcc libc6-dev; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# The pause and busybox images as OCI archives, built once with buildah from
# scratch (no registry): a static pause (hack/node/pause.c), and busybox-static
# with its applets linked, /tmp, and passwd/group entries for root and nobody.
build_images() {
  [ -f "$images/pause.tar" ] && [ -f "$images/busybox.tar" ] && return 0
  local t0=$SECONDS work bah=(buildah --storage-driver vfs) c
  work=$(mktemp -d)
  gcc -static -Os -s -o "$work/pause" "$root/hack/node/pause.c"
  c=$("${bah[@]}" from scratch)
  "${bah[@]}" copy "$c" "$work/pause" /pause >/dev/null
  "${bah[@]}" config --entrypoint '["/pause"]' --cmd '' "$c"
  "${bah[@]}" commit --quiet "$c" "$PAUSE_IMAGE" >/dev/null
  "${bah[@]}" rm "$c" >/dev/null
  mkdir -p "$work/bb/bin" "$work/bb/etc" "$work/bb/tmp"
  cp /bin/busybox "$work/bb/bin/busybox"
  local a
  for a in $(/bin/busybox --list); do [ "$a" = busybox ] || ln -s busybox "$work/bb/bin/$a"; done
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' >"$work/bb/etc/passwd"
  printf 'root:x:0:\nnobody:x:65534:\n' >"$work/bb/etc/group"
  chmod 1777 "$work/bb/tmp"
  c=$("${bah[@]}" from scratch)
  "${bah[@]}" copy "$c" "$work/bb/" / >/dev/null
  "${bah[@]}" config --env PATH=/bin --cmd '["/bin/sh"]' "$c"
  "${bah[@]}" commit --quiet "$c" "$BUSYBOX_IMAGE" >/dev/null
  "${bah[@]}" rm "$c" >/dev/null
  mkdir -p "$images.tmp"
  "${bah[@]}" push --quiet "$PAUSE_IMAGE" "oci-archive:$images.tmp/pause.tar:$PAUSE_IMAGE"
  "${bah[@]}" push --quiet "$BUSYBOX_IMAGE" "oci-archive:$images.tmp/busybox.tar:$BUSYBOX_IMAGE"
  "${bah[@]}" rmi -f "$PAUSE_IMAGE" "$BUSYBOX_IMAGE" >/dev/null 2>&1 || true
  rm -rf "$images" "$work" && mv "$images.tmp" "$images"
  log "pause and busybox images built in $((SECONDS - t0)) s ($images)"
}

build() {
  install_packages
  "$root/hack/cluster.sh" build-node >/dev/null
  build_images
}

node_bin() { "$root/hack/cluster.sh" build-node; }

# The pid of the node's kubelet, if it runs.
kubelet_pid() {
  local pid
  pid=$(cat "$dir/node/kubelet.pid" 2>/dev/null) && kill -0 "$pid" 2>/dev/null && echo "$pid"
}

up() {
  local name=${1:-}
  [ -n "${dir:-}" ] && [ -n "$name" ] || die "usage: hack/node.sh up DIR NAME"
  [ -f "$dir/host-ip" ] || die "$dir is not a control plane started with 'hack/cluster.sh up $dir --kubelets'"
  [ -z "$(kubelet_pid)" ] || die "a node already runs for $dir (hack/node.sh down $dir)"
  [ ! -S "$SOCK" ] || ! ctr -a "$SOCK" version >/dev/null 2>&1 ||
    die "another node's containerd answers on $SOCK (hack/node.sh down DIR of that cluster)"
  build
  local bin ip port st=$dir/node t0=$SECONDS
  bin=$(node_bin)
  ip=$(cat "$dir/host-ip") port=$(cat "$dir/apiserver.port")
  dir=$(cd "$dir" && pwd) st=$dir/node
  rm -rf "$st" && mkdir -p "$st/cni" "$st/plugins" "$RUN" "$STATE" "$KUBELET_ROOT"
  echo "$name" >"$st/name"
  "$root/hack/cluster.sh" kubelet-kubeconfig "$dir" "$name" "https://$ip:$port" >"$st/kubelet.kubeconfig"

  cat >"$st/containerd.toml" <<TOML
version = 2
root = "$STATE/containerd"
state = "$RUN/containerd"
[grpc]
  address = "$SOCK"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE"
  # This machine withholds CAP_SYS_RESOURCE: runc cannot lower a sandbox's oom_score_adj.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$st/cni"
TOML
  cat >"$st/cni/10-bridge.conflist" <<JSON
{
  "cniVersion": "0.4.0",
  "name": "external-storage-node",
  "plugins": [
    {"type": "bridge", "bridge": "$BRIDGE", "isGateway": true, "ipMasq": true, "hairpinMode": true,
     "ipam": {"type": "host-local", "ranges": [[{"subnet": "$POD_CIDR"}]], "routes": [{"dst": "0.0.0.0/0"}]}},
    {"type": "portmap", "capabilities": {"portMappings": true}},
    {"type": "loopback"}
  ]
}
JSON
  # Anonymous requests are refused; the apiserver (kubectl logs/exec) comes
  # with the cluster's admin certificate.
  cat >"$st/kubelet.yaml" <<YAML
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
cgroupDriver: cgroupfs
failCgroupV1: false
failSwapOn: false
containerRuntimeEndpoint: unix://$SOCK
address: $ip
healthzBindAddress: 127.0.0.1
readOnlyPort: 0
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: false}
  x509: {clientCAFile: $dir/pki/ca.crt}
authorization: {mode: AlwaysAllow}
resolvConf: /etc/resolv.conf
serializeImagePulls: false
imageGCHighThresholdPercent: 100
volumePluginDir: $st/plugins
evictionHard: {memory.available: "100Mi", nodefs.available: "1%", imagefs.available: "1%"}
YAML

  # What a pod's traffic needs: forwarding, bridged packets through
  # iptables (kube-proxy's Service rules), the previous values kept for `down`.
  sysctl -n net.ipv4.ip_forward >"$st/ip_forward"
  sysctl -qw net.ipv4.ip_forward=1
  [ -e /proc/sys/net/bridge/bridge-nf-call-iptables ] && sysctl -qw net.bridge.bridge-nf-call-iptables=1

  unshare -m --propagation unchanged sh -c "
    mount --make-rshared /
    containerd --config '$st/containerd.toml' >>'$st/containerd.log' 2>&1 &
    echo \$! >'$st/containerd.pid'
    i=0
    until ctr -a '$SOCK' version >/dev/null 2>&1; do
      i=\$((i + 1)); [ \$i -lt 300 ] || { echo 'containerd did not answer in 60 s' >&2; exit 1; }
      sleep 0.2
    done
    exec '$bin/kubelet' --config '$st/kubelet.yaml' --kubeconfig '$st/kubelet.kubeconfig' \
      --hostname-override '$name' --node-ip '$ip' --root-dir '$KUBELET_ROOT' --cert-dir '$st/pki' --v=2
  " >>"$st/kubelet.log" 2>&1 &
  echo $! >"$st/kubelet.pid"
  # The node's mount namespace, once unshare has made it: `down` ends every
  # process in it, so it must never be recorded as this one.
  local own ns
  own=$(readlink /proc/self/ns/mnt)
  until ns=$(readlink "/proc/$!/ns/mnt" 2>/dev/null) && [ "$ns" != "$own" ]; do
    kill -0 $! 2>/dev/null || { tail -n 20 "$st/kubelet.log" >&2; die "the node's mount namespace was not made"; }
    sleep 0.05
  done
  echo "$ns" >"$st/mntns"

  "$bin/kube-proxy" --kubeconfig "$dir/kubeconfig" --hostname-override "$name" \
    --cluster-cidr "$CLUSTER_CIDR" --proxy-mode iptables --masquerade-all \
    --conntrack-max-per-core 0 --metrics-bind-address 127.0.0.1:10249 \
    --healthz-bind-address 127.0.0.1:10256 >>"$st/kube-proxy.log" 2>&1 &
  echo $! >"$st/kube-proxy.pid"

  local deadline=$((SECONDS + 120))
  until [ -S "$SOCK" ] && ctr -a "$SOCK" version >/dev/null 2>&1; do
    [ -n "$(kubelet_pid)" ] || { tail -n 20 "$st/kubelet.log" "$st/containerd.log" >&2; die "containerd did not start"; }
    [ $SECONDS -lt $deadline ] || die "containerd not answering after 120 s ($st/containerd.log)"
    sleep 0.2
  done
  import_archive "$images/pause.tar" "$PAUSE_IMAGE"
  import_archive "$images/busybox.tar" "$BUSYBOX_IMAGE"
  export KUBECONFIG=$dir/kubeconfig
  until [ "$(kubectl get node "$name" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null)" = True ]; do
    [ -n "$(kubelet_pid)" ] || { tail -n 30 "$st/kubelet.log" >&2; die "the kubelet exited ($st/kubelet.log)"; }
    [ $SECONDS -lt $deadline ] || { tail -n 30 "$st/kubelet.log" >&2; die "node $name not Ready after 120 s"; }
    sleep 0.5
  done
  # The node-lifecycle controller lifts the not-ready taint shortly after.
  until [ -z "$(kubectl get node "$name" -o jsonpath='{.spec.taints}')" ]; do
    [ $SECONDS -lt $deadline ] || die "node $name still tainted after 120 s: $(kubectl get node "$name" -o jsonpath='{.spec.taints}')"
    sleep 0.5
  done
  record_pod_cidr "$name" "$POD_CIDR"
  log "node $name Ready in $((SECONDS - t0)) s (kubelet $("$bin/kubelet" --version | cut -d' ' -f2), containerd $(containerd --version | cut -d' ' -f3), node state in $st)"
}

# record_pod_cidr NAME CIDR: writes the node's pod CIDR (its CNI's host-local
# range) into spec.podCIDR(s), as kube-controller-manager's node IPAM would on
# a cluster that allocates them. The nfs server admits each Node's pod-CIDR
# gateways: a guest's mounts reach it from this node's bridge, 10.244.0.1.
record_pod_cidr() {
  local now
  now=$(kubectl get node "$1" -o jsonpath='{.spec.podCIDR}')
  [ "$now" = "$2" ] && return 0
  [ -z "$now" ] || die "node $1 already has podCIDR $now, not $2"
  kubectl patch node "$1" --type merge -p "{\"spec\":{\"podCIDR\":\"$2\",\"podCIDRs\":[\"$2\"]}}" >/dev/null
}

# import_archive ARCHIVE NAME...: imports one OCI archive and tags it as each NAME.
import_archive() {
  local archive=$1 ref name
  shift
  [ -f "$archive" ] || die "no image archive $archive"
  ref=$(ctr_ images import "$archive" 2>&1 | awk '/^unpacking/ { print $2; exit }')
  [ -n "$ref" ] || die "importing $archive failed"
  for name in "$@"; do
    [ "$name" = "$ref" ] || ctr_ images tag --force "$ref" "$name" >/dev/null
  done
}

import() {
  local archive=${1:-}
  [ -n "${dir:-}" ] && [ -n "$archive" ] && [ $# -ge 2 ] || die "usage: hack/node.sh import DIR ARCHIVE NAME..."
  [ -n "$(kubelet_pid)" ] || die "no node runs for $dir"
  shift
  import_archive "$archive" "$@"
}

node_exec() {
  local pid
  pid=$(kubelet_pid) || die "no node runs for $dir"
  nsenter -t "$pid" -m -- "$@"
}

# Stops everything `up` started, in the order that leaves nothing behind:
# the pods' containers (containerd's shims are not its children), the
# kubelet and containerd, then every process still in the node's mount
# namespace (which takes the namespace and all its mounts with it),
# kube-proxy and its iptables rules, the bridge and its address leases.
down() {
  [ -n "${dir:-}" ] || die "usage: hack/node.sh down DIR"
  local st=$dir/node pid ns n=0
  [ -d "$st" ] || { log "no node state in $dir"; return 0; }
  if ctr -a "$SOCK" version >/dev/null 2>&1; then
    for c in $(ctr_ tasks ls -q 2>/dev/null); do ctr_ tasks kill -s KILL "$c" >/dev/null 2>&1 || true; done
  fi
  for f in kubelet containerd kube-proxy; do
    pid=$(cat "$st/$f.pid" 2>/dev/null) || continue
    kill "$pid" 2>/dev/null && n=$((n + 1)) || true
  done
  ns=$(cat "$st/mntns" 2>/dev/null || true)
  [ "$ns" != "$(readlink /proc/self/ns/mnt)" ] || die "$st/mntns names this shell's own mount namespace: refusing to end its processes"
  local deadline=$((SECONDS + 15))
  while :; do
    local left=()
    for p in /proc/[0-9]*; do
      [ -n "$ns" ] && [ "$(readlink "$p/ns/mnt" 2>/dev/null)" = "$ns" ] && left+=("${p#/proc/}")
    done
    pid=$(cat "$st/kube-proxy.pid" 2>/dev/null) && kill -0 "$pid" 2>/dev/null && left+=("$pid")
    [ ${#left[@]} -gt 0 ] || break
    if [ $SECONDS -ge $deadline ]; then kill -9 "${left[@]}" 2>/dev/null || true; fi
    sleep 0.2
  done
  local bin
  bin=$(node_bin 2>/dev/null) && "$bin/kube-proxy" --cleanup >/dev/null 2>&1 || true
  ip link del "$BRIDGE" 2>/dev/null || true
  rm -rf /var/lib/cni/networks/external-storage-node
  sysctl -qw "net.ipv4.ip_forward=$(cat "$st/ip_forward" 2>/dev/null || echo 1)" || true
  # Nothing is mounted below these in this namespace (the node's mounts went
  # with its namespace); --one-file-system guards against any that were not.
  rm -rf --one-file-system "$STATE" "$RUN" "$KUBELET_ROOT" /var/log/pods /var/log/containers
  rm -f "$st"/*.pid
  log "node of $dir stopped ($n processes signalled)"
}

# Prints the tail of every container log on the node (what `kubectl logs`
# shows), optionally of one namespace: what a failing test shows.
logs() {
  local ns=${1:-} f
  for f in /var/log/pods/${ns:+${ns}_}*/*/*.log; do
    [ -f "$f" ] || continue
    echo "----- $f"
    tail -n "${LOG_LINES:-40}" "$f"
  done
}

cmd=${1:-}
dir=${2:-}
case "$cmd" in
  build) build ;;
  up) up "${@:3}" ;;
  down) down ;;
  import) import "${@:3}" ;;
  exec) [ -n "$dir" ] || die "usage: hack/node.sh exec DIR CMD..."; node_exec "${@:3}" ;;
  logs) logs "${@:3}" ;;
  *) sed -n '/^# Usage:/,/^set -euo/p' "$0" | sed '$d' >&2; exit 2 ;;
esac
