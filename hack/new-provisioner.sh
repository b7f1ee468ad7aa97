#!/usr/bin/env bash
# Scaffolds a new provisioner that builds, passes its tests and its manifest
# checks with no manual edits: the crate NAME/ (NAME-provisioner: main.rs,
# an in-memory-backed Provisioner, a typed StorageClass parameter, unit
# tests, tests/scenario.rs on both control planes, tests/e2e.rs against
# kube-testserver, README.md, Dockerfile), the
# manifests deploy/NAME/ (+ examples/), and its registration in the root
# Cargo.toml (workspace members), .github/workflows/release.yml (tag
# pattern) and .github/workflows/e2e-kind.yml (matrix). The templates are
# hack/scaffold/**/*.tmpl; hack/test-new-provisioner.sh checks the result.
#
# Usage: hack/new-provisioner.sh NAME
#   NAME: a lowercase DNS label starting with a letter, at most 40
#   characters (e.g. `lvm`, `ceph-rbd`); the crate is NAME-provisioner, the
#   default provisioner name example.com/NAME.
# Exit status: 0 done, 2 bad or already used NAME (nothing written), 1 other.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
templates="$root/hack/scaffold"
marker='# hack/new-provisioner.sh adds'

usage() { sed -n '/^# Usage:/,/^# Exit status/p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }
refuse() { printf 'hack/new-provisioner.sh: %s\n' "$*" >&2; exit 2; }

case "${1:-}" in
  -h | --help) usage; exit 0 ;;
  '') usage >&2; exit 2 ;;
esac
[ $# -eq 1 ] || { usage >&2; exit 2; }
name=$1

# --- the name -------------------------------------------------------------
[[ "$name" =~ ^[a-z]([a-z0-9-]*[a-z0-9])?$ ]] \
  || refuse "invalid NAME '$name': use a lowercase DNS label (a-z, 0-9, '-'), starting with a letter and not ending with '-', e.g. 'lvm' or 'ceph-rbd'"
[ ${#name} -le 40 ] \
  || refuse "invalid NAME '$name': ${#name} characters, at most 40 allowed (it becomes NAME-provisioner in names limited to 63)"
crate="$name-provisioner"
ident=${crate//-/_}
# CamelCase type of the provisioner: ceph-rbd -> CephRbd.
type=$(awk -F- '{ for (i = 1; i <= NF; i++) printf "%s%s", toupper(substr($i, 1, 1)), substr($i, 2) }' <<<"$name")
case "$type" in
  Self | Provisioner | Provisioned | ProvisionOptions | ProvisionError | DeleteError | \
  PersistentVolume | PersistentVolumeSpec | HostPathVolumeSource | Volume | Tier | \
  ClassParams | ParamError | HashMap | Mutex | MutexGuard | PoisonError | Cli)
    refuse "invalid NAME '$name': its type name $type clashes with a name the generated code uses; pick another" ;;
esac

# --- not used yet (checked before anything is written) ----------------------
for path in "$name" "deploy/$name"; do
  if [ -e "$root/$path" ] || [ -L "$root/$path" ]; then
    refuse "'$name' is taken: $path already exists; nothing was changed"
  fi
done
members=$(grep -E '^members = \[.*\]$' "$root/Cargo.toml" || true)
[ "$(printf '%s' "$members" | grep -c .)" -eq 1 ] \
  || { echo "hack/new-provisioner.sh: expected one line 'members = [...]' in Cargo.toml" >&2; exit 1; }
! grep -qF "\"$name\"" <<<"$members" \
  || refuse "'$name' is taken: it is already a workspace member in Cargo.toml; nothing was changed"
release="$root/.github/workflows/release.yml"
e2e="$root/.github/workflows/e2e-kind.yml"
! grep -qF "\"$name-v*.*.*\"" "$release" \
  || refuse "'$name' is taken: release.yml already has the tag pattern $name-v*.*.*; nothing was changed"
! grep -qE "^ *- $name *$" "$e2e" \
  || refuse "'$name' is taken: e2e-kind.yml already has it in its matrix; nothing was changed"
for f in "$release" "$e2e"; do
  [ "$(grep -cF "$marker" "$f")" -eq 1 ] \
    || { echo "hack/new-provisioner.sh: expected one marker line '$marker ...' in $f" >&2; exit 1; }
done
if [ ! -d "$templates/crate" ] || [ ! -d "$templates/deploy" ]; then
  echo "hack/new-provisioner.sh: templates missing under $templates" >&2
  exit 1
fi

# --- render into a staging directory, then move into place ------------------
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
render() { # SRC_DIR DEST_DIR: every *.tmpl, placeholders substituted
  local src=$1 dest=$2 f rel
  while IFS= read -r -d '' f; do
    rel=${f#"$src"/}
    mkdir -p "$dest/$(dirname "$rel")"
    sed -e "s/__CRATE__/$crate/g" -e "s/__IDENT__/$ident/g" \
        -e "s/__TYPE__/$type/g" -e "s/__NAME__/$name/g" "$f" >"$dest/${rel%.tmpl}"
  done < <(find "$src" -type f -name '*.tmpl' -print0)
}
render "$templates/crate" "$stage/crate"
render "$templates/deploy" "$stage/deploy"
if grep -rEl '__(CRATE|IDENT|TYPE|NAME)__' "$stage" >&2; then
  echo "hack/new-provisioner.sh: placeholders left in the files above (a template typo)" >&2
  exit 1
fi
# Line lengths depend on NAME, so rustfmt has the last word on the layout.
command -v rustfmt >/dev/null || { echo "hack/new-provisioner.sh: rustfmt not found (rustup component add rustfmt)" >&2; exit 1; }
find "$stage/crate" -name '*.rs' -exec rustfmt --edition 2021 {} +
mkdir -p "$root/deploy"
mv "$stage/crate" "$root/$name"
mv "$stage/deploy" "$root/deploy/$name"

# --- register it --------------------------------------------------------------
sed -i -E "s/^(members = \[.*)\]$/\1, \"$name\"]/" "$root/Cargo.toml"
insert_before_marker() { # FILE LINE: LINE, indented like the marker, above it
  local tmp
  tmp=$(mktemp "$1.XXXXXX")
  awk -v line="$2" -v marker="$marker" '
    index($0, marker) && !done { match($0, /^ */); print substr($0, 1, RLENGTH) line; done = 1 }
    { print }' "$1" >"$tmp"
  cat "$tmp" >"$1" # keeps the file's mode
  rm -f "$tmp"
}
insert_before_marker "$release" "- \"$name-v*.*.*\""
insert_before_marker "$e2e" "- $name"

cat <<EOF
Created the provisioner '$name':
  $name/: crate $crate (in-memory backend, tests, README.md, Dockerfile)
  deploy/$name/: manifests (+ examples/)
  Cargo.toml: "$name" added to the workspace members
  .github/workflows/: release.yml tag pattern $name-v*.*.*, e2e-kind.yml matrix entry

Next steps:
  1. cargo test -p $crate   # builds, records the crate in Cargo.lock, runs unit and e2e tests
  2. Replace the in-memory backend with your storage: $name/src/provisioner.rs (see the REPLACE comments);
     your parameters go in $name/src/params.rs and the table in $name/README.md.
  3. hack/verify.sh   # fmt, clippy, licenses, manifests (deploy/$name included)
  4. hack/build-images.sh $name   # the image
  5. Add a row for $name to the table in README.md, then commit:
     git add $name deploy/$name Cargo.toml Cargo.lock .github/workflows
EOF
