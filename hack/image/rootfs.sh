#!/bin/sh
# Assembles a minimal root filesystem for a `FROM scratch` image: the given
# programs, every shared library they load (resolved with ldd), and the few
# files a glibc program expects (passwd/group with root and nonroot 65532,
# nsswitch.conf, the CA bundle, /tmp). Nothing else: no package manager and
# no shell unless a shell is one of the programs.
#
# This is the distroless idea done from the Debian packages of the build
# stage, so the image stays small (a glibc Rust binary needs ~4 MB of
# libraries, not a 75 MB Debian slim) and builds with no registry beyond
# Debian's.
#
# Runs inside a Debian build stage (POSIX sh, coreutils, ldd, dpkg):
#   rootfs.sh DEST ITEM...
# ITEM is a path or a name on PATH (copied with its libraries), `pkg:NAME`
# (every executable under */bin and */sbin of the installed Debian package
# NAME), `lib:PATH` (a library loaded with dlopen, copied with its own
# libraries), `libs:PATH` (only the libraries PATH loads, for a binary the
# Dockerfile copies itself), or `link:NAME=TARGET` (a symlink /usr/bin/NAME -> TARGET, e.g.
# `link:sh=dash`).
set -eu

[ $# -ge 2 ] || { echo "usage: rootfs.sh DEST ITEM..." >&2; exit 2; }
dest=$1
shift
mkdir -p "$dest"

# Debian bookworm has a merged /usr: keep the same symlinks, so ELF
# interpreter paths (/lib64/ld-linux-x86-64.so.2) and #! lines (/bin/sh) work.
mkdir -p "$dest/usr/bin" "$dest/usr/sbin" "$dest/usr/lib" "$dest/etc" "$dest/tmp" "$dest/root"
chmod 1777 "$dest/tmp"
chmod 0700 "$dest/root"
for d in bin sbin lib lib64 lib32 libx32; do
  if [ -L "/$d" ]; then
    ln -sfn "$(readlink "/$d")" "$dest/$d"
    mkdir -p "$dest/usr/$d"
  fi
done

# copy_file SRC: SRC (dereferenced) into DEST at the same resolved directory,
# keeping SRC's own file name (a library's soname link becomes the file).
copy_file() {
  src=$1
  dir=$(cd "$(dirname "$src")" && pwd -P)
  target="$dest$dir/$(basename "$src")"
  [ -e "$target" ] && return 0
  mkdir -p "$dest$dir"
  cp -L --preserve=mode "$src" "$target"
}

# copy_libs SRC: the libraries SRC loads, if it is a dynamic ELF file.
copy_libs() {
  if [ "$(head -c 4 "$1" | od -An -c | tr -d ' ')" = '177ELF' ]; then
    # "libc.so.6 => /lib/.../libc.so.6 (0x..)" and "/lib64/ld-linux-x86-64.so.2 (0x..)"
    libs=$(ldd "$1" 2>/dev/null | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }') || true
    for lib in $libs; do copy_file "$lib"; done
  fi
}

# copy_with_libs SRC: SRC and its libraries.
copy_with_libs() {
  copy_file "$1"
  copy_libs "$1"
}

for item in "$@"; do
  case "$item" in
    pkg:*)
      pkg=${item#pkg:}
      found=0
      for f in $(dpkg -L "$pkg" | grep -E '/s?bin/[^/]+$'); do
        if [ -f "$f" ] && [ -x "$f" ]; then copy_with_libs "$f"; found=1; fi
      done
      [ "$found" = 1 ] || { echo "rootfs.sh: package $pkg has no executables" >&2; exit 1; }
      ;;
    lib:*)
      copy_with_libs "${item#lib:}"
      ;;
    libs:*)
      [ -e "${item#libs:}" ] || { echo "rootfs.sh: ${item#libs:} does not exist" >&2; exit 1; }
      copy_libs "${item#libs:}"
      ;;
    link:*=*)
      spec=${item#link:}
      ln -sfn "${spec#*=}" "$dest/usr/bin/${spec%%=*}"
      ;;
    */*)
      [ -e "$item" ] || { echo "rootfs.sh: $item does not exist" >&2; exit 1; }
      copy_with_libs "$item"
      ;;
    *)
      path=$(command -v "$item") || { echo "rootfs.sh: $item is not on PATH" >&2; exit 1; }
      copy_with_libs "$path"
      ;;
  esac
done

# Users and name lookup: root for the provisioners that need it, nonroot
# (65532, the distroless convention) for the ones that do not.
cat >"$dest/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/usr/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin
nonroot:x:65532:65532:nonroot:/home/nonroot:/usr/sbin/nologin
EOF
cat >"$dest/etc/group" <<'EOF'
root:x:0:
nogroup:x:65534:
nonroot:x:65532:
EOF
mkdir -p "$dest/home/nonroot"
chown 65532:65532 "$dest/home/nonroot"
cat >"$dest/etc/nsswitch.conf" <<'EOF'
passwd: files
group: files
hosts: files dns
EOF
printf '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n' >"$dest/etc/hosts"
if [ -f /etc/ssl/certs/ca-certificates.crt ]; then
  mkdir -p "$dest/etc/ssl/certs"
  cp /etc/ssl/certs/ca-certificates.crt "$dest/etc/ssl/certs/"
fi
