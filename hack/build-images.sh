#!/usr/bin/env bash
# Builds the provisioners' container images on a machine with no Docker
# engine and no registry access (ours): Debian's buildah (chroot isolation,
# vfs storage), a Debian base made with debootstrap and stored under the name
# the Dockerfiles use, and binaries built on the host and handed to the
# Dockerfiles through their BINARY_IMAGE argument (so the very same
# Dockerfiles build with plain docker/buildx where registries are reachable).
#
# Writes target/images/<provisioner>-provisioner.tar (OCI archive), prints
# each image's size (uncompressed, and the compressed archive), and
# smoke-tests each image by running every `# smoke:` line of its Dockerfile
# inside the image's root filesystem (chroot, with /dev and /proc).
#
# Usage: hack/build-images.sh [--debug] [PROVISIONER...]   (default: every */Dockerfile)
#   --debug  use the debug binaries (what `cargo test` already built) instead
#            of release ones: a quick check that every Dockerfile builds and
#            every smoke test passes (hack/test.sh runs it). The sizes it
#            prints are not the shipped ones (debug binaries are larger).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
out=$root/target/images
mkdir -p "$out"
step() { printf '\n==> %s\n' "$*"; }

profile=release
if [ "${1:-}" = --debug ]; then profile=debug; shift; fi
all=()
for f in */Dockerfile; do all+=("${f%/Dockerfile}"); done
provisioners=("$@")
[ ${#provisioners[@]} -gt 0 ] || provisioners=("${all[@]}")
for p in "${provisioners[@]}"; do
  [ -f "$p/Dockerfile" ] || { echo "no $p/Dockerfile (known: ${all[*]})" >&2; exit 2; }
done

for tool in buildah skopeo debootstrap; do
  command -v "$tool" >/dev/null || {
    step "installing buildah, skopeo, debootstrap"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq buildah skopeo debootstrap >/dev/null
    break
  }
done
bah=(buildah --storage-driver vfs)
storage="containers-storage:[vfs@/var/lib/containers/storage+/run/containers/storage]"
revision=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)

# 1. The Debian base, under the name the Dockerfiles use, made "slim" the way
#    the official image is (debuerreotype --slimify): dpkg drops docs, man
#    pages and translations, apt keeps no caches. Its size is then close to
#    the official one's, so the sizes printed below hold for real builds too.
base=docker.io/library/debian:bookworm-slim
base_label=io.external-storage.base
if [ "$("${bah[@]}" inspect --type image --format "{{index .OCIv1.Config.Labels \"$base_label\"}}" "$base" 2>/dev/null)" != slim-v1 ]; then
  rootfs=$out/rootfs-bookworm
  if [ ! -x "$rootfs/bin/sh" ]; then
    step "debootstrap bookworm (minbase) into $rootfs"
    debootstrap --variant=minbase bookworm "$rootfs" http://deb.debian.org/debian >"$out/debootstrap.log"
  fi
  step "importing the base as $base (slimified)"
  "${bah[@]}" rmi -f "$base" >/dev/null 2>&1 || true
  ctr=$("${bah[@]}" from scratch)
  mnt=$("${bah[@]}" mount "$ctr")
  cp -a "$rootfs/." "$mnt/"
  cat >"$mnt/etc/dpkg/dpkg.cfg.d/docker" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/info/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/lintian/overrides/*
path-exclude /usr/share/locale/*
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
EOF
  cat >"$mnt/etc/apt/apt.conf.d/docker-clean" <<'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
EOF
  printf 'Acquire::Languages "none";\n' >"$mnt/etc/apt/apt.conf.d/docker-no-languages"
  printf 'APT::AutoRemove::SuggestsImportant "false";\n' >"$mnt/etc/apt/apt.conf.d/docker-autoremove-suggests"
  find "$mnt/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
  find "$mnt/usr/share/doc" -mindepth 1 -type d -empty -delete
  rm -rf "$mnt/usr/share/info/"* "$mnt/usr/share/locale/"* "$mnt/usr/share/man/"* "$mnt/usr/share/groff/"* \
    "$mnt/usr/share/lintian/overrides/"* "$mnt/var/cache/apt/archives/"*.deb "$mnt/var/cache/apt/"*.bin \
    "$mnt/var/lib/apt/lists/"* "$mnt/var/log/"*.log "$mnt/var/log/apt/"*
  "${bah[@]}" umount "$ctr" >/dev/null
  "${bah[@]}" config --cmd /bin/bash --label "$base_label=slim-v1" \
    --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin "$ctr"
  "${bah[@]}" commit --quiet "$ctr" "$base" >/dev/null
  "${bah[@]}" rm "$ctr" >/dev/null
fi
printf '%s\t%s (vfs, uncompressed)\n' "$base" "$("${bah[@]}" images --format '{{.Size}}' "$base" | sed -n 1p)"

# 2. The binaries of every requested provisioner, in one cargo run.
crates=()
for p in "${provisioners[@]}"; do crates+=(-p "$p-provisioner"); done
step "$profile binaries: ${provisioners[*]}"
if [ "$profile" = release ]; then
  cargo build --release --locked "${crates[@]}"
else
  cargo build --locked "${crates[@]}"
fi
metadata=$(cargo metadata --format-version 1 --no-deps --locked)
meta() { python3 -c "import json,sys; d=json.loads(sys.argv[1]); $2" "$metadata" "$1"; }

# smoke IMAGE DOCKERFILE: run each `# smoke:` line inside IMAGE's rootfs.
smoke() {
  local image=$1 dockerfile=$2 ctr mnt line n=0
  ctr=$("${bah[@]}" from --pull=never "$image")
  mnt=$("${bah[@]}" mount "$ctr")
  mkdir -p "$mnt/dev" "$mnt/proc"
  mount --bind /dev "$mnt/dev"
  mount -t proc proc "$mnt/proc"
  local status=0
  # The Kubernetes client (rustls) refuses to start without system CA roots
  # when its kubeconfig brings no CA: every image needs the bundle.
  if [ -s "$mnt/etc/ssl/certs/ca-certificates.crt" ]; then
    echo "  smoke ok: /etc/ssl/certs/ca-certificates.crt is there"
  else
    echo "  SMOKE FAILED: no /etc/ssl/certs/ca-certificates.crt (install ca-certificates in the image)" >&2
    status=1
  fi
  while IFS= read -r line; do
    n=$((n + 1))
    eval "set -- ${line#\# smoke: }"
    if chroot "$mnt" "$@" </dev/null; then echo "  smoke ok: ${line#\# smoke: }"
    else echo "  SMOKE FAILED: ${line#\# smoke: }" >&2; status=1; fi
  done < <(grep '^# smoke: ' "$dockerfile")
  umount "$mnt/proc" "$mnt/dev"
  "${bah[@]}" umount "$ctr" >/dev/null
  "${bah[@]}" rm "$ctr" >/dev/null
  [ "$n" -gt 0 ] || { echo "  $dockerfile has no '# smoke:' line" >&2; return 1; }
  return $status
}

failed=()
for p in "${provisioners[@]}"; do
  crate="$p-provisioner"
  version=$(meta "$crate" "print(next(x['version'] for x in d['packages'] if x['name']==sys.argv[2]))")
  bins=$(meta "$crate" "print(' '.join(t['name'] for x in d['packages'] if x['name']==sys.argv[2] for t in x['targets'] if 'bin' in t['kind']))")
  image="localhost/$crate:v$version"
  archive=$out/$crate.tar
  if [ "$profile" = debug ]; then
    image="localhost/$crate:v$version-debug"
    archive=$out/$crate-debug.tar
  fi

  # The binaries as an image, for the Dockerfile's BINARY_IMAGE stage.
  ctr=$("${bah[@]}" from scratch)
  for b in $bins; do "${bah[@]}" copy "$ctr" "${CARGO_TARGET_DIR:-target}/$profile/$b" "/out/$b" >/dev/null; done
  "${bah[@]}" commit --quiet "$ctr" "localhost/$crate-binary:$revision" >/dev/null
  "${bah[@]}" rm "$ctr" >/dev/null

  step "$crate v$version: buildah bud -f $p/Dockerfile"
  "${bah[@]}" rmi -f "$image" >/dev/null 2>&1 || true
  "${bah[@]}" bud --quiet --isolation chroot --pull=never --layers=false \
    --build-arg "BINARY_IMAGE=localhost/$crate-binary:$revision" \
    --build-arg "DEBIAN_IMAGE=$base" \
    --build-arg "VERSION=v$version" --build-arg "REVISION=$revision" \
    --build-arg "TARGETARCH=$(dpkg --print-architecture)" \
    -f "$p/Dockerfile" -t "$image" . >/dev/null

  rm -f "$archive"
  skopeo copy --quiet "$storage$image" "oci-archive:$archive:$image"

  step "$crate: smoke test inside the image"
  smoke "$image" "$p/Dockerfile" || failed+=("$p")

  size=$("${bah[@]}" images --format '{{.Size}}' "$image" | sed -n 1p)
  line=$(printf '%s\t%s\timage %s (uncompressed)\tOCI archive %s (compressed layers)' \
    "$(date -u +%F)" "$image" "$size" "$(du -h "$archive" | cut -f1)")
  if [ "$profile" = release ]; then
    echo "$line" | tee -a "$out/sizes.txt"
  else
    echo "$line  [debug binary: not the shipped size]"
  fi
  "${bah[@]}" rmi -f "localhost/$crate-binary:$revision" >/dev/null 2>&1 || true
done

if [ ${#failed[@]} -gt 0 ]; then
  echo "smoke tests failed for: ${failed[*]}" >&2
  exit 1
fi
