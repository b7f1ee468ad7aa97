#!/usr/bin/env bash
# Prepares the release of one provisioner: bumps its crate version and the
# image tag in deploy/<provisioner>/, commits, and makes the tag
# `<provisioner>-vX.Y.Z` that .github/workflows/release.yml builds from.
# Pushing is left to you: git push origin main <provisioner>-vX.Y.Z
#
# Usage: hack/release.sh <hostpath|local-volume|nfs|flex> <X.Y.Z>
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

provisioner=${1:?usage: hack/release.sh <provisioner> <X.Y.Z>}
version=${2:?usage: hack/release.sh <provisioner> <X.Y.Z>}
[[ "$version" =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]] || { echo "version must be X.Y.Z, got $version" >&2; exit 2; }
[ -f "$provisioner/Cargo.toml" ] && [ -d "deploy/$provisioner" ] \
  || { echo "unknown provisioner $provisioner (no $provisioner/Cargo.toml or deploy/$provisioner)" >&2; exit 2; }
[ -z "$(git status --porcelain)" ] || { echo "the work tree has changes; commit them first" >&2; exit 2; }
tag="$provisioner-v$version"
git rev-parse -q --verify "refs/tags/$tag" >/dev/null && { echo "tag $tag exists" >&2; exit 2; }

# The crate's own version (first `version =` of its [package] table).
sed -i "0,/^version = \".*\"/s//version = \"$version\"/" "$provisioner/Cargo.toml"
# The image tag in the manifests.
grep -rl "$provisioner-provisioner:v" "deploy/$provisioner" | while read -r f; do
  sed -i -E "s#($provisioner-provisioner):v[0-9]+\.[0-9]+\.[0-9]+#\1:v$version#g" "$f"
done
cargo update --workspace --offline >/dev/null 2>&1 || cargo update --workspace >/dev/null
# The chart follows the manifests and the crate version (hack/charts.py).
if [ -d "deploy/$provisioner/chart" ]; then
  python3 hack/charts.py generate >/dev/null
fi
git add "$provisioner/Cargo.toml" Cargo.lock "deploy/$provisioner"
git commit -m "$provisioner: release v$version"
git tag -a "$tag" -m "$provisioner v$version"
echo "tagged $tag; push with: git push origin HEAD $tag"
