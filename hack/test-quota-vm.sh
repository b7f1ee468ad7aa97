#!/usr/bin/env bash
# Capacity enforcement (project quotas) on a real quota-enabled kernel.
#
# The CI machines' kernel has no quota support (CONFIG_QUOTA off, XFS quota
# not built), so the quota tests run here inside a small VM: Debian
# bookworm's linux-image-amd64 (6.1: CONFIG_QUOTA, QFMT_V2, XFS quota) under
# qemu-system-x86_64 (KVM, else TCG), a root filesystem made with debootstrap
# and cached under ~/.cache/external-storage/quota-vm-<hash>/, two blank
# virtio disks formatted in the guest (ext4 -O quota,project and XFS, both
# mounted prjquota), no network (-nic none: everything talks over the
# guest's loopback). The host-built test binaries run in the guest from a
# read-only 9p share of this checkout (same absolute path, so the
# CARGO_BIN_EXE_* paths compiled into them hold); a second, writable 9p
# share carries the guest's script in and its exit status out.
#
# Runs: hostpath's tests/capacity.rs and tests/quota.rs, nfs's
# tests/capacity.rs, with QUOTA_TEST_EXT4 / QUOTA_TEST_XFS naming the mounts
# and QUOTA_VM=1 (the tests then fail instead of skipping). Exits non-zero
# unless every test passed AND every enforcement check printed its evidence
# line (`quota-evidence: <provisioner> <fs>: ... EDQUOT`).
#
# Usage: hack/test-quota-vm.sh [--image-only]   (root on Debian 12; installs qemu-system-x86
#                                      and debootstrap when missing)
# Env:   EXTERNAL_STORAGE_CACHE (default ~/.cache/external-storage),
#        QUOTA_VM_TIMEOUT (seconds for the whole guest run, default 900),
#        QUOTA_VM_KEEP=1 keeps the job directory (console log, disks).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
step() { printf '\n==> %s\n' "$*"; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
t_start=$(now)

# --- tools on the host
need=()
command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
command -v debootstrap >/dev/null || need+=(debootstrap)
command -v jq >/dev/null || need+=(jq)
if [ ${#need[@]} -gt 0 ]; then
  step "installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# --- the guest image, cached by a hash of its recipe
# What the guest needs: the kernel (its initrd has the virtio modules),
# modprobe for 9p, CA certificates (rustls in the tests' kube client loads
# the system roots, even for the test server's own CA), netbase (rpcbind
# finds its port in /etc/services: without it, it listens on no socket), the filesystems' tools, NFS-Ganesha with its helpers and
# the libnfs client for the nfs tests.
packages=(linux-image-amd64 initramfs-tools kmod ca-certificates netbase util-linux e2fsprogs xfsprogs iproute2 procps
  nfs-ganesha nfs-ganesha-vfs rpcbind dbus libnfs-utils)
# shellcheck source=hack/lib/vm.sh
source "$root/hack/lib/vm.sh"
vm_image quota-vm 3 "$(vm_init)" "${packages[@]}"
[ "${1:-}" = --image-only ] && exit 0

# --- the test binaries (host build, same Debian 12 glibc as the guest)
step "building the quota test binaries (cargo test --no-run)"
t_build=$(now)
tests=()
for spec in "hostpath-provisioner capacity" "hostpath-provisioner quota" "nfs-provisioner capacity"; do
  read -r pkg name <<<"$spec"
  exe=$(cargo test --no-run --locked -q -p "$pkg" --test "$name" --message-format=json |
    jq -r 'select(.reason == "compiler-artifact" and .profile.test == true and .target.kind == ["test"]) | .executable')
  [ -x "$exe" ] || { echo "no test executable for $pkg --test $name" >&2; exit 1; }
  dir=$(cargo metadata --format-version 1 --no-deps --locked |
    jq -r --arg p "$pkg" '.packages[] | select(.name == $p) | .manifest_path' | xargs dirname)
  tests+=("$pkg/$name|$dir|$exe")
done
target_dir=$(cargo metadata --format-version 1 --no-deps --locked | jq -r .target_directory)
echo "built in $(since "$t_build") s"

# --- the job: disks, the guest's script
job=$(mktemp -d /var/tmp/quota-vm-job.XXXXXX)
truncate -s 1G "$job/ext4.img" "$job/xfs.img"
{
  echo 'set -u'
  echo 'echo "QUOTA-VM-BOOTED uptime=$(cut -d" " -f1 /proc/uptime)s kernel=$(uname -r)"'
  echo 'ip link set lo up'
  # An address besides loopback: getaddrinfo(AI_ADDRCONFIG), which Ganesha
  # uses for Bind_addr, finds no 127.0.0.1 while only lo has one. A dummy
  # interface carries no traffic anywhere (-nic none).
  echo 'modprobe dummy; ip link show dummy0 >/dev/null 2>&1 || ip link add dummy0 type dummy'
  echo 'ip addr add 10.99.0.1/24 dev dummy0 && ip link set dummy0 up'
  echo 'modprobe loop; modprobe quota_v2'
  echo 'hostname quota-vm'
  printf 'mkdir -p %q\n' "$root"
  printf 'mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=512000 src %q || { echo 1 >/job/rc; exit; }\n' "$root"
  case "$target_dir" in
    "$root"/*) ;;
    *)
      printf 'mkdir -p %q\n' "$target_dir"
      printf 'mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=512000 tgt %q || { echo 1 >/job/rc; exit; }\n' "$target_dir"
      ;;
  esac
  cat <<'EOF'
mkdir -p /mnt/ext4 /mnt/xfs
mkfs.ext4 -q -F -O quota,project /dev/vdb && mount -o prjquota /dev/vdb /mnt/ext4 || { echo 1 >/job/rc; exit; }
mkfs.xfs -q -f /dev/vdc && mount -o prjquota /dev/vdc /mnt/xfs || { echo 1 >/job/rc; exit; }
grep -E ' /mnt/(ext4|xfs) ' /proc/mounts
export QUOTA_TEST_EXT4=/mnt/ext4 QUOTA_TEST_XFS=/mnt/xfs QUOTA_VM=1 RUST_BACKTRACE=1
rc=0
t0=$(cut -d" " -f1 /proc/uptime)
EOF
  for t in "${tests[@]}"; do
    IFS='|' read -r label dir exe <<<"$t"
    printf 'echo "QUOTA-VM-TEST %s"\n' "$label"
    printf '(cd %q && CARGO_MANIFEST_DIR=%q %q --test-threads=1 --nocapture) || { echo "QUOTA-VM-FAILED %s"; rc=1; }\n' \
      "$dir" "$dir" "$exe" "$label"
  done
  cat <<'EOF'
t1=$(cut -d" " -f1 /proc/uptime)
echo "QUOTA-VM-TESTS-TIME $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')s"
umount /mnt/ext4 /mnt/xfs
echo "$rc" >/job/rc
sync
EOF
} >"$job/run.sh"

# --- boot
step "booting the guest ($(basename "$image"))"
# KVM when it can run this kernel, else software emulation (TCG).
accel=$(vm_accel "$image")
[ "$accel" = kvm ] || echo "KVM unusable here (no writable /dev/kvm, or the kernel did not boot under it in 20 s): software emulation (TCG)"
accel=(-accel "$accel")
virtfs=(-virtfs "local,path=$root,mount_tag=src,security_model=none,readonly=on"
  -virtfs "local,path=$job,mount_tag=job,security_model=none")
case "$target_dir" in
  "$root"/*) ;;
  *) virtfs+=(-virtfs "local,path=$target_dir,mount_tag=tgt,security_model=none,readonly=on") ;;
esac
echo "accelerator: ${accel[1]}"
t_boot=$(now)
set +e
timeout "${QUOTA_VM_TIMEOUT:-900}" qemu-system-x86_64 "${accel[@]}" -cpu max -smp 2 -m 2048 \
  -nodefaults -display none -serial stdio -monitor none -nic none -no-reboot \
  -kernel "$image/vmlinuz" -initrd "$image/initrd.img" \
  -append "root=/dev/vda rw console=ttyS0 init=/sbin/vm-init panic=-1 quiet loglevel=3" \
  -drive "file=$image/rootfs.img,format=raw,if=virtio,snapshot=on" \
  -drive "file=$job/ext4.img,format=raw,if=virtio" \
  -drive "file=$job/xfs.img,format=raw,if=virtio" \
  "${virtfs[@]}" </dev/null 2>&1 |
  while IFS= read -r line; do
    line=${line%$'\r'}
    case "$line" in
      *QUOTA-VM-BOOTED*) echo "$line (host: $(since "$t_boot") s after qemu started)"
        since "$t_boot" >"$job/boot-seconds" ;;
      *) printf '%s\n' "$line" ;;
    esac
    printf '%s\n' "$line" >>"$job/console.log"
  done
qemu_rc=${PIPESTATUS[0]}
set -e
t_vm=$(since "$t_boot")

# --- verdict
step "quota VM verdict"
fail=0
[ "$qemu_rc" = 0 ] || { echo "qemu exited with $qemu_rc (124: timed out)"; fail=1; }
guest_rc=$(cat "$job/rc" 2>/dev/null || echo missing)
[ "$guest_rc" = 0 ] || { echo "guest test run: rc=$guest_rc"; fail=1; }
grep -a 'QUOTA-VM-FAILED' "$job/console.log" || true
for p in hostpath nfs; do
  for f in ext4 xfs; do
    # XFS reports a project quota's hard limit as ENOSPC (its tests check
    # that the filesystem itself had room); ext4 as EDQUOT.
    # nfs-cp prints no NFS status: nfs/tests/capacity.rs proves the refusal
    # from the server side (file stopped at the limit, quota full, room left).
    errno=EDQUOT; [ "$f" = xfs ] && errno='ENOSPC \(XFS project quota'
    [ "$p" = nfs ] && errno='refused at the quota'
    if ! grep -aoE "quota-evidence: $p $f: .* past 8 MiB request: $errno.*" "$job/console.log"; then
      echo "MISSING: no $errno evidence for $p on $f: that enforcement check did not run"
      fail=1
    fi
  done
done
grep -aoE 'quota-evidence: .*(expanded|metrics|deleted).*' "$job/console.log" || true
echo "boot (qemu start to the guest's script): $(cat "$job/boot-seconds" 2>/dev/null || echo '?') s;" \
  "guest tests: $(grep -aoE 'QUOTA-VM-TESTS-TIME [0-9.]+s' "$job/console.log" | cut -d' ' -f2);" \
  "VM total: $t_vm s; whole script: $(since "$t_start") s"
if [ "$fail" != 0 ]; then
  echo "hack/test-quota-vm.sh: FAILED (kept: console log $job/console.log, disks, guest script)"
  exit 1
fi
[ "${QUOTA_VM_KEEP:-}" = 1 ] && echo "kept: $job" || rm -rf "$job"
echo "hack/test-quota-vm.sh: quota enforcement verified on ext4 and XFS (hostpath and nfs)"
