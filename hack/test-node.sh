#!/usr/bin/env bash
# Every provisioner end to end as real pods on a real node: the control plane
# (hack/cluster.sh up --kubelets) and a node on this machine (hack/node.sh:
# kubelet, containerd, runc, CNI bridge, kube-proxy); the nfs scenario's
# clients run on a second node in a qemu guest (hack/node-vm.sh), which has
# the kernel NFS client this machine lacks. The shipped manifests go
# in unmodified through `kubectl apply -f deploy/<x>`, their pods run from the
# images hack/build-images.sh built (imported under exactly the names deploy/
# uses) with their shipped securityContext, and the kubelet mounts the
# volumes into workload pods that write as a non-root user; a second pod on
# the same claim reads the data back.
#
# Needs the images: hack/build-images.sh [--debug] first (hack/test.sh does).
# On failure the pods' logs (from the node's /var/log/pods) and the
# namespaces' events are printed.
#
# Usage: hack/test-node.sh [--release] [PROVISIONER...]   (default: hostpath local-volume flex nfs)
#   --release  import target/images/<x>.tar (release builds) instead of the -debug archives
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
suffix=-debug
scenarios=()
for arg in "$@"; do
  case "$arg" in
    --release) suffix= ;;
    hostpath | local-volume | flex | nfs) scenarios+=("$arg") ;;
    *) echo "usage: hack/test-node.sh [--release] [hostpath|local-volume|flex|nfs]..." >&2; exit 2 ;;
  esac
done
[ ${#scenarios[@]} -gt 0 ] || scenarios=(hostpath local-volume flex nfs)

source "$root/hack/node/e2e-lib.sh"

work=$(mktemp -d /tmp/test-node.XXXXXX)
cluster=$work/cluster
NODE=node-1
GUEST=guest-1
finish() {
  local rc=$?
  if [ $rc -ne 0 ]; then
    echo "==> FAILED (exit $rc): pods, events and container logs" >&2
    KUBECONFIG=$cluster/kubeconfig kubectl get pods,pvc,pv -A -o wide >&2 || true
    KUBECONFIG=$cluster/kubeconfig kubectl get events -A --sort-by=.lastTimestamp 2>/dev/null | tail -n 40 >&2 || true
    "$root/hack/node.sh" logs "$cluster" >&2 || true
    tail -n 30 "$cluster/node/kubelet.log" >&2 2>/dev/null || true
    if [ -d "$cluster/vm-$GUEST" ]; then
      echo "----- guest $GUEST: container logs, kubelet, console" >&2
      "$root/hack/node-vm.sh" logs "$cluster" "$GUEST" >&2 || true
      tail -n 30 "$cluster/vm-$GUEST/kubelet.log" "$cluster/vm-$GUEST/console.log" >&2 2>/dev/null || true
    fi
  fi
  [ ! -d "$cluster/vm-$GUEST" ] || "$root/hack/node-vm.sh" down "$cluster" "$GUEST" >/dev/null 2>&1 || true
  "$root/hack/node.sh" down "$cluster" >/dev/null 2>&1 || true
  "$root/hack/cluster.sh" down "$cluster" >/dev/null 2>&1 || true
  for l in "${loops[@]}"; do losetup -d "$l" 2>/dev/null || true; done
  for d in "${made_dirs[@]}"; do rm -rf --one-file-system "$d"; done
  rm -rf "$work"
  exit $rc
}
loops=()
# The host directories the shipped manifests use: removed afterwards only if
# this run made them.
host_dirs=(/var/lib/hostpath-provisioner /var/lib/local-volume-provisioner /var/lib/flex-example /mnt/fast-disks)
made_dirs=()
for d in "${host_dirs[@]}"; do [ -e "$d" ] || made_dirs+=("$d"); done
trap finish EXIT

t=$(now)
"$root/hack/node.sh" build
echo "node binaries and images ready in $(since "$t") s"
t=$(now)
"$root/hack/cluster.sh" up "$cluster" --kubelets
"$root/hack/node.sh" up "$cluster" "$NODE"
export KUBECONFIG=$cluster/kubeconfig
echo "control plane and node $NODE up in $(since "$t") s"

for s in "${scenarios[@]}"; do
  t=$(now)
  printf '\n==> %s on a real node\n' "$s"
  import_image "$s"
  source "$root/hack/node/e2e-$s.sh"
  echo "==> $s passed in $(since "$t") s"
done
echo
echo "hack/test-node.sh: ${scenarios[*]}: all passed on a real node"
