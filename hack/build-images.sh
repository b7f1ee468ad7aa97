#!/usr/bin/env bash
# Builds the provisioners' container images on a machine with no Docker
# engine and no registry access (ours): Debian's buildah (chroot isolation,
# vfs storage), a Debian base made with debootstrap and stored under the name
# the Dockerfiles use, and binaries built on the host and handed to the
# Dockerfiles through their BINARY_IMAGE argument (so the very same
# Dockerfiles build with plain docker/buildx where registries are reachable).
#
# Writes target/images/<provisioner>-provisioner.tar (OCI archive), prints each
# image's size, and smoke-tests each image by running its binary's --version
# inside the image's root filesystem (chroot).
#
# Usage: hack/build-images.sh [hostpath|local-volume|nfs|flex ...]   (default: all)
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
out=$root/target/images
mkdir -p "$out"
step() { printf '\n==> %s\n' "$*"; }

all=(hostpath local-volume nfs flex)
provisioners=("$@")
[ ${#provisioners[@]} -gt 0 ] || provisioners=("${all[@]}")
for p in "${provisioners[@]}"; do
  [ -f "$p/Dockerfile" ] || { echo "no $p/Dockerfile (known: ${all[*]})" >&2; exit 2; }
done

for tool in buildah skopeo debootstrap; do
  command -v "$tool" >/dev/null || {
    step "installing buildah, skopeo, debootstrap"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq buildah skopeo debootstrap >/dev/null
    break
  }
done
bah=(buildah --storage-driver vfs)
storage="containers-storage:[vfs@/var/lib/containers/storage+/run/containers/storage]"
revision=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)

# 1. The Debian base, under the name the Dockerfiles use.
base=docker.io/library/debian:bookworm-slim
if ! "${bah[@]}" inspect --type image "$base" >/dev/null 2>&1; then
  rootfs=$out/rootfs-bookworm
  if [ ! -x "$rootfs/bin/sh" ]; then
    step "debootstrap bookworm (minbase) into $rootfs"
    debootstrap --variant=minbase bookworm "$rootfs" http://deb.debian.org/debian >"$out/debootstrap.log"
  fi
  step "importing the base as $base"
  ctr=$("${bah[@]}" from scratch)
  mnt=$("${bah[@]}" mount "$ctr")
  cp -a "$rootfs/." "$mnt/"
  rm -rf "$mnt/var/cache/apt/archives/"*.deb "$mnt/var/lib/apt/lists/"*
  "${bah[@]}" umount "$ctr" >/dev/null
  "${bah[@]}" config --cmd /bin/bash --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin "$ctr"
  "${bah[@]}" commit --quiet "$ctr" "$base" >/dev/null
  "${bah[@]}" rm "$ctr" >/dev/null
fi

for p in "${provisioners[@]}"; do
  crate="$p-provisioner"
  version=$(cargo metadata --format-version 1 --no-deps --locked \
    | python3 -c "import json,sys; print(next(x['version'] for x in json.load(sys.stdin)['packages'] if x['name']=='$crate'))")
  image="localhost/$crate:v$version"

  step "$crate v$version: release binary"
  cargo build --release --locked -p "$crate"
  bins=$(cargo metadata --format-version 1 --no-deps --locked \
    | python3 -c "import json,sys; print(' '.join(t['name'] for x in json.load(sys.stdin)['packages'] if x['name']=='$crate' for t in x['targets'] if 'bin' in t['kind']))")

  ctr=$("${bah[@]}" from scratch)
  for b in $bins; do "${bah[@]}" copy "$ctr" "target/release/$b" "/out/$b" >/dev/null; done
  "${bah[@]}" commit --quiet "$ctr" "localhost/$crate-binary:$revision" >/dev/null
  "${bah[@]}" rm "$ctr" >/dev/null

  step "$crate: buildah bud -f $p/Dockerfile"
  "${bah[@]}" bud --quiet --isolation chroot --pull=never --layers=false \
    --build-arg "BINARY_IMAGE=localhost/$crate-binary:$revision" \
    --build-arg "VERSION=v$version" --build-arg "REVISION=$revision" \
    -f "$p/Dockerfile" -t "$image" . >/dev/null

  archive=$out/$crate.tar
  rm -f "$archive"
  skopeo copy --quiet "$storage$image" "oci-archive:$archive:$image"

  step "$crate: smoke test (--version inside the image)"
  ctr=$("${bah[@]}" from --pull=never "$image")
  mnt=$("${bah[@]}" mount "$ctr")
  entry=$("${bah[@]}" inspect --type image --format '{{index .OCIv1.Config.Entrypoint 0}}' "$image")
  chroot "$mnt" "$entry" --version
  "${bah[@]}" umount "$ctr" >/dev/null
  "${bah[@]}" rm "$ctr" >/dev/null

  size=$("${bah[@]}" images --format '{{.Size}}' "$image" | head -1)
  printf '%s\timage %s (vfs, uncompressed)\tOCI archive %s\n' "$image" "$size" "$(du -h "$archive" | cut -f1)" \
    | tee -a "$out/sizes.txt"
done
