#!/usr/bin/env bash
# Proves that hack/new-provisioner.sh makes a provisioner that works with no
# manual edits. In a copy of the work tree (tracked and untracked files, so
# uncommitted changes count; never in the repository itself) it scaffolds
# `scaffoldcheck`, then runs what CI would on it: rustfmt, clippy -D warnings
# and the crate's tests (unit and end-to-end), checks that Cargo.lock gained
# only the new package, checks deploy/scaffoldcheck like hack/verify.sh
# checks every deploy directory, checks that the workflows stay valid YAML,
# and that the script refuses bad and already used names.
#
# Builds go to this checkout's target/ (CARGO_TARGET_DIR, offline), so only
# the new crate is compiled. Called by hack/test.sh after the cargo tests.
#
# Usage: hack/test-new-provisioner.sh
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
name=scaffoldcheck
crate=$name-provisioner
step() { printf '\n==> test-new-provisioner: %s\n' "$*"; }
fail() { printf 'hack/test-new-provisioner.sh: FAILED: %s\n' "$*" >&2; exit 1; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
copy="$tmp/repo"
mkdir "$copy"

step "copy the work tree to $copy"
cd "$root"
# Tracked files deleted in the work tree are skipped: the copy is the tree
# as it is now.
git ls-files -z -co --exclude-standard \
  | while IFS= read -r -d '' f; do
      if [ -e "$f" ] || [ -L "$f" ]; then printf '%s\0' "$f"; fi
    done \
  | tar --null -T - -cf - | tar -xf - -C "$copy"
cd "$copy"
cp Cargo.lock "$tmp/Cargo.lock.before"

# The files a refused run must leave untouched.
registry=(Cargo.toml .github/workflows/release.yml .github/workflows/e2e-kind.yml)
snapshot() { cat "${registry[@]}" | cksum; find . -path ./target -prune -o -print | LC_ALL=C sort | cksum; }

# expect_refusal WHY NAME: the script exits 2, says why, and changes nothing.
expect_refusal() {
  local why=$1 bad=$2 before out status=0
  before=$(snapshot)
  out=$(hack/new-provisioner.sh "$bad" 2>&1) || status=$?
  [ "$status" -eq 2 ] || fail "$why '$bad': exit status $status, expected 2; output: $out"
  [ -n "$out" ] || fail "$why '$bad': refused without a message"
  [ "$(snapshot)" = "$before" ] || fail "$why '$bad': files changed although it was refused"
  printf '  refused (%s) %-44s %s\n' "$why" "'$bad'" "${out%%$'\n'*}"
}

step "refuses bad names"
for bad in "" Lvm 1lvm -lvm lvm- lvm_x "lvm x" lvm.x "a$(printf 'b%.0s' {1..40})" self; do
  expect_refusal "bad name" "$bad"
done

step "hack/new-provisioner.sh $name"
hack/new-provisioner.sh "$name"
for f in "$name/Cargo.toml" "$name/README.md" "$name/Dockerfile" "$name/src/main.rs" \
  "$name/src/lib.rs" "$name/src/provisioner.rs" "$name/src/params.rs" "$name/tests/e2e.rs" \
  "deploy/$name/Kustomization" "deploy/$name/examples/pvc.yaml"; do
  [ -s "$f" ] || fail "$f was not created"
done
if grep -rEn '__(CRATE|IDENT|TYPE|NAME)__' "$name" "deploy/$name"; then
  fail "placeholders left in the generated files"
fi
grep -qE "^members = \[.*\"$name\"\]$" Cargo.toml || fail "$name is not a workspace member"
grep -qF -- "- \"$name-v*.*.*\"" .github/workflows/release.yml || fail "no tag pattern in release.yml"
grep -qE -- "^ +- $name$" .github/workflows/e2e-kind.yml || fail "no matrix entry in e2e-kind.yml"
grep -qx "RUN rootfs.sh /rootfs libs:/out/$crate" "$name/Dockerfile" || fail "the Dockerfile does not follow the rootfs pattern"
grep -q "^# smoke: /usr/local/bin/$crate " "$name/Dockerfile" || fail "the Dockerfile has no smoke line for hack/build-images.sh"
grep -qx "ENTRYPOINT \[\"/usr/local/bin/$crate\"\]" "$name/Dockerfile" || fail "the Dockerfile has no entrypoint"

step "refuses an existing name"
expect_refusal "existing" "$name"
expect_refusal "existing" flex
expect_refusal "existing" lib
# Each registration alone is enough to refuse: without the crate directory
# (deploy/ is left), then without both (the workspace member is left).
mv "$name" "$tmp/crate"
expect_refusal "deploy dir left" "$name"
mv "deploy/$name" "$tmp/deploy"
expect_refusal "member left" "$name"
mv "$tmp/crate" "$name"
mv "$tmp/deploy" "deploy/$name"

step "manifests: deploy/$name (as hack/verify.sh checks every deploy directory)"
export VERIFY_VENV="$root/target/verify-venv"
hack/verify-manifests.sh "deploy/$name"

step "workflows are valid YAML and list $name"
"$VERIFY_VENV/bin/python" - "$name" <<'EOF'
import sys, yaml
name = sys.argv[1]
release = yaml.safe_load(open(".github/workflows/release.yml"))
e2e = yaml.safe_load(open(".github/workflows/e2e-kind.yml"))
# PyYAML reads the key `on` as True.
tags = (release.get("on") or release[True])["push"]["tags"]
assert f"{name}-v*.*.*" in tags, tags
matrix = e2e["jobs"]["e2e"]["strategy"]["matrix"]["provisioner"]
assert matrix[-1] == name and "flex" in matrix, matrix
print(f"  release.yml tags: {tags}\n  e2e-kind.yml matrix: {matrix}")
EOF

export CARGO_TARGET_DIR="$root/target"
step "cargo fmt --all --check"
cargo fmt --all --check

step "cargo clippy -p $crate --all-targets -D warnings"
cargo clippy --offline -p "$crate" --all-targets -- -D warnings

step "cargo test -p $crate"
cargo test --offline -p "$crate"

step "its scenario on the real control plane (hack/cluster.sh)"
E2E_CLUSTER=real cargo test --offline -p "$crate" --test scenario

step "Cargo.lock gained only the package $crate"
# Cargo.lock is blank-line separated [[package]] records; drop the new one.
without_new() {
  awk -v RS= -v ORS='\n\n' -v want="name = \"$crate\"" \
    '{ split($0, l, "\n") } l[2] != want' "$1"
}
grep -qx "name = \"$crate\"" Cargo.lock || fail "Cargo.lock has no package $crate"
if ! diff -u <(without_new "$tmp/Cargo.lock.before") <(without_new Cargo.lock); then
  fail "Cargo.lock changed beyond the new package (the scaffold must use workspace dependencies only)"
fi

step "image: hack/build-images.sh --debug $name (its Dockerfile builds, its smoke lines pass)"
hack/build-images.sh --debug "$name"
buildah --storage-driver vfs rmi -f "localhost/$crate:v0.1.0-debug" >/dev/null

echo
echo "hack/test-new-provisioner.sh: all checks passed"
