#!/bin/sh
# The build stage of every Dockerfile: compiles one crate's release binaries
# for the image's platform and puts them in OUT (default /out).
#
# Runs natively on the build machine (`FROM --platform=$BUILDPLATFORM`) and
# cross-compiles when buildx asks for another architecture (TARGETARCH):
# compiling under QEMU emulation would take hours with LTO.
#
#   cargo-build.sh CRATE [BIN...]        (BIN defaults to CRATE)
set -eu

[ $# -ge 1 ] || { echo "usage: cargo-build.sh CRATE [BIN...]" >&2; exit 2; }
crate=$1
shift
[ $# -gt 0 ] || set -- "$crate"
out=${OUT:-/out}
host=$(dpkg --print-architecture)
arch=${TARGETARCH:-$host}

case "$arch" in
  amd64) target=x86_64-unknown-linux-gnu gnu=x86_64-linux-gnu ;;
  arm64) target=aarch64-unknown-linux-gnu gnu=aarch64-linux-gnu ;;
  *) echo "cargo-build.sh: unsupported TARGETARCH '$arch' (amd64 or arm64)" >&2; exit 2 ;;
esac

if [ "$arch" != "$host" ]; then
  # A cross C toolchain (ring and other -sys crates compile C) and the Rust
  # standard library for the target.
  if ! command -v "$gnu-gcc" >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      "gcc-$gnu" "libc6-dev-$arch-cross" >/dev/null
  fi
  rustup target add "$target"
  linker_var=CARGO_TARGET_$(echo "$target" | tr 'a-z-' 'A-Z_')_LINKER
  cc_var=CC_$(echo "$target" | tr '-' '_')
  export "$linker_var=$gnu-gcc" "$cc_var=$gnu-gcc"
fi

cargo build --release --locked --target "$target" -p "$crate"
mkdir -p "$out"
for bin in "$@"; do
  cp "target/$target/release/$bin" "$out/$bin"
done
echo "cargo-build.sh: $* for $arch in $out"
