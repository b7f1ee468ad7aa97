#!/usr/bin/env bash
# A real Kubernetes node in a qemu guest, for what this machine cannot serve
# itself: the kernel NFS client (this machine has no nfs filesystem and loads
# no modules), and every capability (it withholds CAP_SYS_RESOURCE). The
# guest runs Debian bookworm's kernel, containerd, runc and CNI plugins
# (image built with debootstrap, cached by its recipe like the quota VM's,
# hack/lib/vm.sh), and the same kubelet and kube-proxy as hack/node.sh, read
# from a read-only 9p share of their cache directory. It joins a control
# plane started with `hack/cluster.sh up DIR --kubelets` through qemu's user
# networking (the guest reaches this machine's address, where the apiserver
# listens, and the direct node's pod network, as connections made by qemu
# on this machine); its pods use 10.244.1.0/24.
#
# The guest is driven through a writable 9p share (DIR/vm-NAME): its script,
# the console log, the kubelet's and containerd's logs, and a drop box for
# commands (`exec`). Under TCG (this machine's KVM cannot boot a stock
# kernel) it is slow: give it only what needs it.
#
# Usage:
#   hack/node-vm.sh image                build the guest image (cached; `up` does it too)
#   hack/node-vm.sh up DIR NAME          boot it, wait until Node NAME is Ready and untainted
#   hack/node-vm.sh exec DIR NAME CMD    run shell command CMD in the guest, print its output, exit with its status
#   hack/node-vm.sh logs DIR NAME        the last lines of every container log in the guest
#   hack/node-vm.sh down DIR NAME        power it off (kills qemu if it does not stop)
# Env: NODE_VM_TIMEOUT (seconds to wait for Ready, default 600), NODE_VM_MEMORY (MiB, default 1536).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cache=${EXTERNAL_STORAGE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/external-storage}
images=$cache/node-images-v1
PAUSE_IMAGE=localhost/external-storage/pause:1
GUEST_IP=10.0.2.15
POD_CIDR=10.244.1.0/24

die() { echo "node-vm.sh: $*" >&2; exit 1; }
log() { echo "node-vm.sh: $*" >&2; }

# What the guest needs: the kernel (its initrd has virtio; nfs, overlay,
# bridge and netfilter are modules), the container runtime and CNI plugins,
# iptables and conntrack for kube-proxy, nfs-common for `mount -t nfs`.
packages=(linux-image-amd64 initramfs-tools kmod ca-certificates netbase util-linux iproute2 procps
  containerd runc containernetworking-plugins iptables conntrack nfs-common e2fsprogs)
job_dir() { echo "$dir/vm-$name"; }

# Sets `image`: the guest image, built once per recipe (hack/lib/vm.sh).
guest_image() {
  # shellcheck source=hack/lib/vm.sh
  source "$root/hack/lib/vm.sh"
  # PID 1 also mounts cgroup v2 and makes / rshared (the kubelet's mount propagation).
  VM_ROOTFS_SIZE=3G vm_image node-vm 1 "$(vm_init 'mount -t cgroup2 cgroup2 /sys/fs/cgroup
mount --make-rshared /')" "${packages[@]}"
}

up() {
  [ -f "$dir/host-ip" ] || die "$dir is not a control plane started with 'hack/cluster.sh up $dir --kubelets'"
  local job host_ip port bin
  job=$(job_dir)
  if [ -f "$job/qemu.pid" ] && kill -0 "$(cat "$job/qemu.pid")" 2>/dev/null; then die "guest $name already runs"; fi
  command -v qemu-system-x86_64 >/dev/null && command -v debootstrap >/dev/null || {
    log "installing qemu-system-x86, debootstrap"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends qemu-system-x86 debootstrap >/dev/null
  }
  "$root/hack/node.sh" build
  bin=$("$root/hack/cluster.sh" build-node)
  guest_image
  host_ip=$(cat "$dir/host-ip") port=$(cat "$dir/apiserver.port")
  rm -rf "$job" && mkdir -p "$job/cmd" "$job/out"
  "$root/hack/cluster.sh" kubelet-kubeconfig "$dir" "$name" "https://$host_ip:$port" >"$job/kubelet.kubeconfig"
  # kube-proxy watches Services and EndpointSlices cluster-wide: the admin
  # identity (the Node authorizer does not grant those to a kubelet).
  cp "$dir/kubeconfig" "$job/proxy.kubeconfig"
  kubectl config --kubeconfig "$job/proxy.kubeconfig" set-cluster local --server "https://$host_ip:$port" >/dev/null
  cat >"$job/containerd.toml" <<TOML
version = 2
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "/etc/cni/net.d"
TOML
  cat >"$job/10-bridge.conflist" <<JSON
{
  "cniVersion": "0.4.0",
  "name": "external-storage-node",
  "plugins": [
    {"type": "bridge", "bridge": "cni0", "isGateway": true, "ipMasq": true, "hairpinMode": true,
     "ipam": {"type": "host-local", "ranges": [[{"subnet": "$POD_CIDR"}]], "routes": [{"dst": "0.0.0.0/0"}]}},
    {"type": "portmap", "capabilities": {"portMappings": true}},
    {"type": "loopback"}
  ]
}
JSON
  cat >"$job/kubelet.yaml" <<YAML
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
cgroupDriver: cgroupfs
failSwapOn: false
containerRuntimeEndpoint: unix:///run/containerd/containerd.sock
readOnlyPort: 0
authentication: {anonymous: {enabled: false}, webhook: {enabled: false}, x509: {clientCAFile: /job/ca.crt}}
authorization: {mode: AlwaysAllow}
resolvConf: /etc/resolv.conf
serializeImagePulls: false
imageGCHighThresholdPercent: 100
evictionHard: {memory.available: "50Mi", nodefs.available: "1%", imagefs.available: "1%"}
YAML
  cp "$dir/pki/ca.crt" "$job/ca.crt"
  cat >"$job/run.sh" <<SH
set -u
echo "NODE-VM-BOOTED uptime=\$(cut -d' ' -f1 /proc/uptime)s kernel=\$(uname -r)"
hostname $name
for m in virtio_net overlay br_netfilter bridge veth nf_conntrack nfs nfsv4; do modprobe \$m; done
for i in \$(seq 100); do [ -e /sys/class/net/eth0 ] && break; sleep 0.1; done
ip link set lo up; ip link set eth0 up
ip addr add $GUEST_IP/24 dev eth0; ip route add default via 10.0.2.2
echo 'nameserver 10.0.2.3' >/etc/resolv.conf
sysctl -qw net.ipv4.ip_forward=1 net.bridge.bridge-nf-call-iptables=1
mkdir -p /opt/node-bin /opt/node-images /etc/cni/net.d /etc/containerd
mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=512000 bin /opt/node-bin
mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=512000 images /opt/node-images
cp /job/10-bridge.conflist /etc/cni/net.d/
containerd --config /job/containerd.toml >/job/containerd.log 2>&1 &
until ctr version >/dev/null 2>&1; do sleep 0.2; done
for i in /opt/node-images/*.tar; do ctr -n k8s.io images import "\$i" >/dev/null; done
echo "NODE-VM-RUNTIME uptime=\$(cut -d' ' -f1 /proc/uptime)s"
/opt/node-bin/kubelet --config /job/kubelet.yaml --kubeconfig /job/kubelet.kubeconfig --hostname-override $name \\
  --node-ip $GUEST_IP --v=2 >/job/kubelet.log 2>&1 &
/opt/node-bin/kube-proxy --kubeconfig /job/proxy.kubeconfig --hostname-override $name --cluster-cidr 10.244.0.0/16 \\
  --proxy-mode iptables --masquerade-all --conntrack-max-per-core 0 --metrics-bind-address 127.0.0.1:10249 \\
  >/job/kube-proxy.log 2>&1 &
while [ ! -f /job/stop ]; do
  for f in /job/cmd/*.sh; do
    [ -f "\$f" ] || continue
    n=\$(basename "\$f" .sh); mv "\$f" "/job/cmd/\$n.running"
    sh "/job/cmd/\$n.running" >"/job/out/\$n.out" 2>&1; echo \$? >"/job/out/\$n.rc"
  done
  sleep 0.3
done
echo NODE-VM-STOPPING
for p in kube-proxy kubelet; do pkill -x \$p; done
sync
SH
  local accel
  accel=$(vm_accel "$image")
  log "booting guest $name (accelerator: $accel)"
  local t0=$SECONDS
  setsid qemu-system-x86_64 -accel "$accel" -cpu max -smp 2 -m "${NODE_VM_MEMORY:-1536}" \
    -nodefaults -display none -serial "file:$job/console.log" -monitor none -no-reboot \
    -kernel "$image/vmlinuz" -initrd "$image/initrd.img" \
    -append "root=/dev/vda rw console=ttyS0 init=/sbin/vm-init panic=-1 quiet loglevel=3 net.ifnames=0" \
    -drive "file=$image/rootfs.img,format=raw,if=virtio,snapshot=on" \
    -virtfs "local,path=$job,mount_tag=job,security_model=none" \
    -virtfs "local,path=$bin,mount_tag=bin,security_model=none,readonly=on" \
    -virtfs "local,path=$images,mount_tag=images,security_model=none,readonly=on" \
    -nic user,model=virtio-net-pci </dev/null >"$job/qemu.log" 2>&1 &
  echo $! >"$job/qemu.pid"
  export KUBECONFIG=$dir/kubeconfig
  local deadline=$((SECONDS + ${NODE_VM_TIMEOUT:-600})) state
  while :; do
    kill -0 "$(cat "$job/qemu.pid")" 2>/dev/null || { tail -n 30 "$job/console.log" "$job/qemu.log" >&2; die "qemu exited"; }
    state=$(kubectl get node "$name" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}/{.spec.taints}' 2>/dev/null || true)
    [ "$state" = True/ ] && break
    [ $SECONDS -lt $deadline ] || { tail -n 30 "$job/console.log" "$job/kubelet.log" >&2; die "node $name not Ready after ${NODE_VM_TIMEOUT:-600} s"; }
    sleep 1
  done
  # spec.podCIDR(s) as node IPAM would record them (hack/node.sh record_pod_cidr).
  [ -n "$(kubectl get node "$name" -o jsonpath='{.spec.podCIDR}')" ] ||
    kubectl patch node "$name" --type merge -p "{\"spec\":{\"podCIDR\":\"$POD_CIDR\",\"podCIDRs\":[\"$POD_CIDR\"]}}" >/dev/null
  log "guest node $name Ready in $((SECONDS - t0)) s after qemu started ($(grep -aoE 'NODE-VM-(BOOTED|RUNTIME) uptime=[0-9.]+s' "$job/console.log" | tr '\n' ' '))"
}

vm_exec() {
  local job n i
  job=$(job_dir)
  [ -f "$job/qemu.pid" ] && kill -0 "$(cat "$job/qemu.pid")" 2>/dev/null || die "guest $name does not run"
  n=c$(date +%s%N)
  printf '%s\n' "$*" >"$job/cmd/$n.tmp" && mv "$job/cmd/$n.tmp" "$job/cmd/$n.sh"
  for i in $(seq 3000); do [ -f "$job/out/$n.rc" ] && break; sleep 0.1; done
  cat "$job/out/$n.out" 2>/dev/null
  return "$(cat "$job/out/$n.rc" 2>/dev/null || echo 124)"
}

down() {
  local job pid i
  job=$(job_dir)
  [ -f "$job/qemu.pid" ] || { log "no guest $name in $dir"; return 0; }
  pid=$(cat "$job/qemu.pid")
  touch "$job/stop"
  for i in $(seq 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null || true
  rm -f "$job/qemu.pid"
  log "guest $name stopped"
}

cmd=${1:-}
dir=${2:-}
name=${3:-}
case "$cmd" in
  up | down | logs | exec) [ -n "$dir" ] && [ -n "$name" ] || die "usage: hack/node-vm.sh $cmd DIR NAME" ;;
esac
[ -z "$dir" ] || dir=$(cd "$dir" && pwd)
case "$cmd" in
  image) guest_image ;;
  up) up ;;
  down) down ;;
  exec) vm_exec "${@:4}" ;;
  logs) vm_exec 'for f in /var/log/pods/*/*/*.log; do [ -f "$f" ] && { echo "----- $f"; tail -n 40 "$f"; }; done; true' ;;
  *) sed -n '/^# Usage:/,/^set -euo/p' "$0" | sed '$d' >&2; exit 2 ;;
esac
