# Shared by the scripts that boot a Debian guest under qemu
# (hack/test-quota-vm.sh, hack/node-vm.sh): the guest image, built with
# debootstrap and cached by a hash of its recipe, and the accelerator
# choice. Sourced, not run.

# vm_init [LINES]: the guest's PID 1 (a shell script): mounts the pseudo
# filesystems, runs LINES (shell, e.g. more mounts), mounts the job share
# (9p tag `job`) and runs its run.sh with the console as its output, then
# powers off.
vm_init() {
  cat <<'SH'
#!/bin/sh
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
for m in proc:/proc sysfs:/sys devtmpfs:/dev tmpfs:/run tmpfs:/tmp; do
  t=${m%%:*}; d=${m#*:}
  mountpoint -q "$d" || mount -t "$t" "$t" "$d"
done
mkdir -p /dev/pts /dev/shm && mount -t devpts devpts /dev/pts && mount -t tmpfs tmpfs /dev/shm
SH
  [ -z "${1:-}" ] || printf '%s\n' "$1"
  cat <<'SH'
modprobe 9pnet_virtio; modprobe 9p
mkdir -p /job
if mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000 job /job; then
  sh /job/run.sh >/dev/console 2>&1
else
  echo "VM: cannot mount the job share" >/dev/console
fi
sync
echo o >/proc/sysrq-trigger
sleep 30
SH
}

# vm_image NAME RECIPE_VERSION INIT PACKAGE...: makes (or finds, cached) the
# image ~/.cache/external-storage/NAME-<hash>/{rootfs.img,vmlinuz,initrd.img}:
# debootstrap bookworm (minbase) plus PACKAGEs (no service started in the
# chroot), INIT as /sbin/vm-init (the kernel's init=), /etc/mtab a link to
# /proc/self/mounts. Sets `image` to its directory. Older images of NAME go.
# VM_ROOTFS_SIZE (default 2G) sizes the root filesystem.
vm_image() {
  local name=$1 version=$2 init=$3
  shift 3
  local hash cache_root build fs t0
  hash=$(printf '%s\n' "$version" "$*" "$init" | sha256sum | cut -c1-16)
  cache_root=${EXTERNAL_STORAGE_CACHE:-$HOME/.cache/external-storage}
  image=$cache_root/$name-$hash
  if [ -f "$image/rootfs.img" ] && [ -f "$image/vmlinuz" ] && [ -f "$image/initrd.img" ]; then
    echo "guest image: $image (cached)"
    return 0
  fi
  echo "building the guest image (debootstrap bookworm + $# packages) into $image"
  t0=$SECONDS
  mkdir -p "$cache_root"
  build=$(mktemp -d "$cache_root/.$name-build.XXXXXX")
  fs=$build/rootfs
  # shellcheck disable=SC2064 # the paths are fixed now
  trap "for d in dev/pts dev proc sys; do umount '$fs/\$d' 2>/dev/null || true; done; rm -rf '$build'" EXIT
  debootstrap --variant=minbase bookworm "$fs" http://deb.debian.org/debian >"$build/debootstrap.log" 2>&1 || {
    tail -30 "$build/debootstrap.log"; return 1; }
  printf '#!/bin/sh\nexit 101\n' >"$fs/usr/sbin/policy-rc.d"
  chmod +x "$fs/usr/sbin/policy-rc.d"
  mount --bind /dev "$fs/dev"; mount -t devpts devpts "$fs/dev/pts"
  mount -t proc proc "$fs/proc"; mount -t sysfs sysfs "$fs/sys"
  chroot "$fs" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    "$@" >"$build/apt.log" 2>&1 || { tail -30 "$build/apt.log"; return 1; }
  chroot "$fs" apt-get clean
  for d in dev/pts dev proc sys; do umount "$fs/$d"; done
  rm -f "$fs/usr/sbin/policy-rc.d"
  printf '%s\n' "$init" >"$fs/sbin/vm-init"
  chmod 755 "$fs/sbin/vm-init"
  ln -sf ../proc/self/mounts "$fs/etc/mtab"
  echo "$name" >"$fs/etc/hostname"
  printf '127.0.0.1 localhost %s\n::1 localhost\n' "$name" >"$fs/etc/hosts"
  cp "$(ls "$fs"/boot/vmlinuz-* | sort -V | tail -1)" "$build/vmlinuz"
  cp "$(ls "$fs"/boot/initrd.img-* | sort -V | tail -1)" "$build/initrd.img"
  mkfs.ext4 -q -L "$name-root" -d "$fs" "$build/rootfs.img" "${VM_ROOTFS_SIZE:-2G}"
  rm -rf "$fs"
  rm -rf "$cache_root/$name"-*
  trap - EXIT
  mv "$build" "$image"
  echo "guest image built in $((SECONDS - t0)) s: $(du -sh "$image" | cut -f1)"
}

# vm_accel IMAGE_DIR: prints `kvm` when this machine's KVM runs the image's
# kernel, else `tcg`. /dev/kvm can be there and still not run a stock kernel
# (a nested host's paravirtual KVM, kvm-pvm, boots only PVM-enabled guests:
# qemu starts and the guest hangs silently), so a bare kernel boot must print
# its banner within 20 s first.
vm_accel() {
  if [ -w /dev/kvm ] && (set +o pipefail
    timeout 20 qemu-system-x86_64 -accel kvm -cpu max -m 256 -nodefaults -display none -serial stdio \
      -monitor none -nic none -no-reboot -kernel "$1/vmlinuz" \
      -append "console=ttyS0 earlyprintk=serial,ttyS0 panic=-1 init=/nonexistent" </dev/null 2>&1 |
      grep -q -m1 'Linux version'); then
    echo kvm
  else
    echo tcg
  fi
}
