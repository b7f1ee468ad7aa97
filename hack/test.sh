#!/usr/bin/env bash
# The project's test command: everything CI checks, on a fresh Debian 12
# machine. Installs what the tests need when it is missing (kubectl; later the
# NFS-Ganesha packages), then runs formatting, lints, docs and every test of
# the workspace. Usage: hack/test.sh
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

# Each step shows the minutes and seconds since the run began, so a slow
# step (the 30-minute warm goal) is found in the log, not guessed at.
started=$SECONDS
step() { printf '\n==> [%dm%02ds] %s\n' $(((SECONDS - started) / 60)) $(((SECONDS - started) % 60)) "$*"; }

# One full build, not an edit loop: incremental compilation only adds
# gigabytes of cache here (set CARGO_INCREMENTAL=1 to keep it).
export CARGO_INCREMENTAL=${CARGO_INCREMENTAL:-0}

# Free disk where the build, the image store and buildah's temporary files
# go. A full disk shows up far from its cause (buildah: "read/write on closed
# pipe"), so the run says up front when it may not fit. A run from scratch
# needs about $need_gb GB (measured: see hack/README.md).
need_gb=6
disk_report() {
  mkdir -p target /var/lib/containers /var/tmp
  df -h target /var/lib/containers /var/tmp | awk 'NR == 1 || !seen[$1]++'
}

step "disk"
disk_report
free_gb=$(df -P -BG target | awk 'NR == 2 { sub("G", "", $4); print $4 }')
if [ "$free_gb" -lt "$need_gb" ]; then
  echo "WARNING: only ${free_gb} GB free under target/; a run from scratch needs about ${need_gb} GB" >&2
fi

step "tools"
command -v cargo >/dev/null || { echo "cargo not found: install Rust stable (rustup)"; exit 1; }
command -v go >/dev/null || { echo "go not found: the real control plane is built from its Go modules (Go 1.24+)"; exit 1; }
go version
# Debian packages the end-to-end tests use: NFS-Ganesha and its helpers plus
# the libnfs userspace client (nfs), loop devices and wipe tools
# (local-volume), the image tools (buildah, skopeo, debootstrap), and what a
# real node runs (containerd, runc, the CNI plugins, iptables and conntrack
# for kube-proxy; busybox-static and gcc for the offline workload and pause
# images; qemu for the guest node and the quota VM). Installed only when missing.
packages=(nfs-ganesha nfs-ganesha-vfs rpcbind dbus libnfs-utils util-linux e2fsprogs xfsprogs coreutils
  buildah skopeo debootstrap containerd runc containernetworking-plugins iptables conntrack busybox-static
  gcc libc6-dev qemu-system-x86)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
"$root/hack/install-kubectl.sh"
# sed, not head: head exits after one line and kubectl, still writing, dies of
# SIGPIPE, which pipefail turns into a failed run.
kubectl version --client 2>/dev/null | sed -n 1p

step "hack/verify.sh: fmt, clippy -D warnings, licenses, manifests"
hack/verify.sh

step "cargo test"
cargo test --workspace --all-targets --locked --no-fail-fast

# The real control plane, built once from the Go module proxy and cached by
# version outside target/ (a cold build takes a few minutes; then seconds).
step "the real control plane: hack/cluster.sh build ($(hack/cluster.sh version))"
hack/cluster.sh build

step "scenarios and API conformance on kube-testserver"
hack/test-scenarios.sh testserver

step "scenarios and API conformance on the real control plane (etcd, kube-apiserver, kube-controller-manager, kube-scheduler)"
hack/test-scenarios.sh real

step "images: every Dockerfile builds (buildah, debug binaries) and passes its smoke tests"
hack/build-images.sh --debug

step "images run: hostpath, flex and nfs from their image's root filesystem against kube-testserver"
hack/test-images.sh --debug

step "real node: hack/test-node.sh (kubelet + containerd on this machine, nfs clients on a qemu guest node; the shipped manifests and images of hostpath, local-volume, flex and nfs as real pods, volumes written and read back by pods)"
hack/test-node.sh

step "quotas on a real quota kernel: hack/test-quota-vm.sh (qemu VM, ext4 and XFS with prjquota; hostpath and nfs capacity, expansion, usage metrics)"
hack/test-quota-vm.sh

step "hack/test-new-provisioner.sh: the scaffold builds, passes its tests, manifest checks and image build"
hack/test-new-provisioner.sh

step "install paths on a hardened cluster: hack/test-install.sh (PodSecurity default baseline, a real node and a Windows Node; kubectl apply -f, -k and helm install -n for every provisioner; upgrades from the previous release and uninstalls keep the data)"
hack/test-install.sh
step "local-up --testserver: hack/local-up.sh's demo against kube-testserver (its real-node variants share hack/test-install.sh's cluster, node and hostpath round trip)"
hack/local-up.sh hostpath --testserver

# The quick benchmark and chaos runs, in the test build's profile: they show
# the tools work and the invariants hold; publishable numbers come from the
# release builds in hack/README.md.
step "bench --quick, the memory check (10,000 claims + 10,000 PVs cached, ceiling 60 MiB in this profile), the local-volume binary discovering 100 mounted directories, the nfs binary and its Ganesha through 100 claims and a restart"
cargo run -q -p external-storage-bench --locked --bin bench -- --quick --cached 10000 --cached-ceiling-mib 60 --local-volume 100 --nfs 100

step "bench --cluster real --quick: ours next to the Go library (sig-storage-lib-external-provisioner) on the real control plane, at the shipped client limits too (the rows with kube-controller-manager at its default 20/30 are left to the full run: its binder alone sets their pace)"
cargo run -q -p external-storage-bench --locked --bin bench -- --cluster real --quick --kcm-default-sizes 0

step "chaos --quick: leader-elected in-memory replicas, then two hostpath node instances"
cargo run -q -p external-storage-bench --locked --bin chaos -- --quick
cargo run -q -p external-storage-bench --locked --bin chaos -- --quick --provisioner hostpath

step "chaos --quick --cluster real: the same plan on the real control plane (provisioner kills and a kube-apiserver restart; API faults are test-server only)"
cargo run -q -p external-storage-bench --locked --bin chaos -- --quick --cluster real
cargo run -q -p external-storage-bench --locked --bin chaos -- --quick --cluster real --provisioner hostpath

step "fuzz: every target for a short fixed time (hack/fuzz.sh: cargo-fuzz with nightly, else the stable random-mutation driver)"
FUZZ_SECONDS="${FUZZ_SECONDS:-6}" "$root/hack/fuzz.sh"

step "cargo doc (warnings are errors)"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked

step "disk after the run"
disk_report
du -sh target /var/lib/containers/storage 2>/dev/null || true

echo
echo "hack/test.sh: all checks passed"
