#!/usr/bin/env bash
# Runs the built images, not just their binaries: each provisioner's
# entrypoint starts from the image's own root filesystem (chroot, with /dev,
# /proc and /sys) against kube-testserver, provisions a claim made from
# deploy/<x>/examples, and deletes it again: hostpath, flex (the example
# driver from deploy/flex's ConfigMap, run by the image's own shell) and nfs
# (which also writes and reads the volume over NFSv3 with the libnfs
# client). local-volume is not run here (it needs mounts under its
# discovery directory); its image is covered by its smoke lines only.
#
# What this catches that `cargo test` cannot: files the image lacks at run
# time (CA roots, /etc/services, /etc/mtab, a plugin Ganesha loads with
# dlopen). It is the local stand-in for .github/workflows/e2e-kind.yml.
#
# Usage: hack/test-images.sh [--debug]   (images from hack/build-images.sh
#        [--debug]: localhost/<p>-provisioner:vX.Y.Z[-debug])
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
suffix=
if [ "${1:-}" = --debug ]; then suffix=-debug; shift; fi
bah=(buildah --storage-driver vfs)
step() { printf '\n==> %s\n' "$*"; }
fail() { echo "test-images: $*" >&2; exit 1; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

work=$(mktemp -d)
pids=()
mounts=()
containers=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  done
  for ((i = ${#mounts[@]} - 1; i >= 0; i--)); do umount "${mounts[$i]}" 2>/dev/null || umount -l "${mounts[$i]}" || true; done
  for c in "${containers[@]}"; do "${bah[@]}" rm "$c" >/dev/null 2>&1 || true; done
  rm -rf "$work"
}
trap cleanup EXIT

cargo build -q --locked -p kube-testserver
port=$(free_port)
export KUBECONFIG=$work/kubeconfig
target/debug/kube-testserver --listen "127.0.0.1:$port" --kubeconfig-out "$KUBECONFIG" >"$work/apiserver.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do [ -s "$KUBECONFIG" ] && kubectl get ns >/dev/null 2>&1 && break; sleep 0.1; done

metadata=$(cargo metadata --format-version 1 --no-deps --locked)
version_of() {
  python3 -c "import json,sys; print(next(p['version'] for p in json.loads(sys.argv[1])['packages'] if p['name']==sys.argv[2]))" "$metadata" "$1"
}

# rootfs_of PROVISIONER: a container of its image, mounted, with /dev,
# /proc, /sys and the kubeconfig at /etc/kube/config, in $rootfs (not
# printed: a $(...) subshell would lose what cleanup must undo).
rootfs_of() {
  local image ctr mnt
  image="localhost/$1-provisioner:v$(version_of "$1-provisioner")$suffix"
  ctr=$("${bah[@]}" from --pull=never "$image") || fail "no image $image: run hack/build-images.sh ${suffix:+--debug} $1"
  containers+=("$ctr")
  mnt=$("${bah[@]}" mount "$ctr")
  mkdir -p "$mnt/dev" "$mnt/proc" "$mnt/sys" "$mnt/etc/kube"
  mount --bind /dev "$mnt/dev" && mounts+=("$mnt/dev")
  mount -t proc proc "$mnt/proc" && mounts+=("$mnt/proc")
  mount -t sysfs sys "$mnt/sys" && mounts+=("$mnt/sys")
  cp "$KUBECONFIG" "$mnt/etc/kube/config"
  rootfs=$mnt
}

# bind HOST_DIR ROOTFS PATH: HOST_DIR at PATH inside ROOTFS.
bind() {
  mkdir -p "$2$3"
  mount --bind "$1" "$2$3"
  mounts+=("$2$3")
}

wait_ready() { # PORT LOG
  for _ in $(seq 200); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$1/readyz")" = 200 ] && return 0
    sleep 0.1
  done
  tail -20 "$2" >&2
  fail "not ready after 20 s (log above)"
}

bound_pv() { # CLAIM -> PV name, once Bound
  kubectl wait --for=jsonpath='{.status.phase}'=Bound "pvc/$1" --timeout=60s >/dev/null
  kubectl get pvc "$1" -o jsonpath='{.spec.volumeName}'
}

pv_gone() { # PV
  for _ in $(seq 300); do
    kubectl get pv "$1" >/dev/null 2>&1 || return 0
    sleep 0.1
  done
  fail "PV $1 still exists 30 s after its claim was deleted"
}

step "hostpath image: kubectl apply -f deploy/hostpath, a node, the example claim to Bound and back"
kubectl apply -f deploy/hostpath >/dev/null
kubectl apply -f - >/dev/null <<'YAML'
apiVersion: v1
kind: Node
metadata: {name: node-a, labels: {kubernetes.io/hostname: node-a}}
status: {conditions: [{type: Ready, status: "True"}]}
YAML
rootfs_of hostpath
mkdir -p "$work/hostpath-root"
bind "$work/hostpath-root" "$rootfs" /var/lib/hostpath
mport=$(free_port)
NODE_NAME=node-a chroot "$rootfs" /usr/local/bin/hostpath-provisioner --kubeconfig /etc/kube/config \
  --root /var/lib/hostpath --metrics-address "127.0.0.1:$mport" >"$work/hostpath.log" 2>&1 &
pids+=($!)
wait_ready "$mport" "$work/hostpath.log"
kubectl apply -f deploy/hostpath/examples >/dev/null
pv=$(bound_pv hostpath-example)
dir=$(kubectl get pv "$pv" -o jsonpath='{.spec.hostPath.path}')
[ -d "$work/hostpath-root${dir#/var/lib/hostpath}" ] || fail "hostpath: no directory for $dir"
kubectl delete -f deploy/hostpath/examples --wait=false >/dev/null
pv_gone "$pv"
[ ! -e "$work/hostpath-root${dir#/var/lib/hostpath}" ] || fail "hostpath: $dir left behind"
echo "hostpath image: $pv provisioned as $dir and deleted"

step "flex image: kubectl apply -f deploy/flex, its ConfigMap's driver run by the image's /bin/sh"
kubectl apply -f deploy/flex >/dev/null
rootfs_of flex
mkdir -p "$rootfs/opt/flex-driver" "$work/flex-data"
kubectl -n flex-provisioner get configmap flex-driver -o jsonpath='{.data.driver}' >"$rootfs/opt/flex-driver/driver"
chmod 0555 "$rootfs/opt/flex-driver/driver"
bind "$work/flex-data" "$rootfs" /var/lib/flex-example
mport=$(free_port)
POD_NAMESPACE=flex-provisioner FLEX_EXAMPLE_BASE_DIR=/var/lib/flex-example FLEX_DRIVER_ENV=FLEX_EXAMPLE_BASE_DIR \
  chroot "$rootfs" /usr/local/bin/flex-provisioner --kubeconfig /etc/kube/config \
  --driver /opt/flex-driver/driver --driver-name example.com/dir \
  --metrics-address "127.0.0.1:$mport" >"$work/flex.log" 2>&1 &
pids+=($!)
wait_ready "$mport" "$work/flex.log"
kubectl apply -f deploy/flex/examples/pvc.yaml >/dev/null
pv=$(bound_pv flex-example)
[ -d "$work/flex-data/$pv" ] || { tail -20 "$work/flex.log" >&2; fail "flex: the driver made no directory for $pv"; }
kubectl delete -f deploy/flex/examples/pvc.yaml --wait=false >/dev/null
pv_gone "$pv"
[ ! -e "$work/flex-data/$pv" ] || fail "flex: $pv left behind"
echo "flex image: $pv made and removed by the driver under the image's shell"

step "nfs image: Ganesha in the image's root, a claim to Bound, NFSv3 write and read, delete"
command -v nfs-cp >/dev/null || fail "nfs-cp not found (apt-get install libnfs-utils)"
kubectl apply -f - >/dev/null <<'YAML'
apiVersion: v1
kind: Service
metadata: {name: nfs-image, namespace: default}
spec: {clusterIP: 127.0.0.1, ports: [{name: nfs, port: 2049}]}
---
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: {name: nfs-image}
provisioner: external-storage.io/nfs
reclaimPolicy: Delete
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: nfs-image, namespace: default}
spec:
  storageClassName: nfs-image
  accessModes: [ReadWriteMany]
  resources: {requests: {storage: 1Gi}}
YAML
rootfs_of nfs
mkdir -p "$work/nfs-export"
bind "$work/nfs-export" "$rootfs" /export
nfsport=$(free_port)
mntport=$(free_port)
mport=$(free_port)
chroot "$rootfs" /usr/local/bin/nfs-provisioner --kubeconfig /etc/kube/config --export-root /export \
  --service-name nfs-image --service-namespace default --bind-address 127.0.0.1 \
  --allowed-clients 127.0.0.1 --nfs-port "$nfsport" --mount-port "$mntport" --grace-period 0 \
  --metrics-address "127.0.0.1:$mport" >"$work/nfs.log" 2>&1 &
pids+=($!)
wait_ready "$mport" "$work/nfs.log"
pv=$(bound_pv nfs-image)
path=$(kubectl get pv "$pv" -o jsonpath='{.spec.nfs.path}')
url="nfs://127.0.0.1$path/hello?version=3&nfsport=$nfsport&mountport=$mntport"
echo "written through the nfs image" >"$work/hello"
nfs-cp "$work/hello" "$url" || { tail -20 "$work/nfs.log" >&2; fail "nfs-cp to $url failed"; }
[ "$(nfs-cat "$url")" = "written through the nfs image" ] || fail "nfs-cat read back something else"
cmp "$work/hello" "$work/nfs-export/${path#/export/}/hello" || fail "the file is not in the export directory"
kubectl delete pvc nfs-image --wait=false >/dev/null
pv_gone "$pv"
[ ! -e "$work/nfs-export/${path#/export/}" ] || fail "nfs: $path left behind"
echo "nfs image: $pv exported as $path, written and read over NFSv3, deleted"

echo
echo "hack/test-images.sh: the images run"
