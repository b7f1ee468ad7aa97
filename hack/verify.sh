#!/usr/bin/env bash
# Static checks: formatting, lints, dependency licenses, and every manifest
# under deploy/ (kustomize build, schema validation, security posture).
# Called by hack/test.sh (and so by .ci/run and ci.yml).
#
# Usage: hack/verify.sh
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
step() { printf '\n==> %s\n' "$*"; }

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy --all-targets -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "dependency licenses"
# cargo-deny needs its advisory database from GitHub, which our machines
# cannot reach, and building it costs minutes per CI run; the license half of
# its job is a read of `cargo metadata` against our allow-list.
cargo metadata --format-version 1 --locked | python3 "$root/hack/check-licenses.py"

step "base images pinned by digest, workflow actions by commit"
pinned=(*/Dockerfile hack/scaffold/crate/Dockerfile.tmpl .github/workflows/*.yml)
python3 "$root/hack/verify-pins.py" "${pinned[@]}"
# The check itself must refuse a floating tag (a checker that passes
# everything would pass the line above too).
unpinned=$(mktemp -d)
printf 'FROM debian:bookworm-slim\n' >"$unpinned/Dockerfile"
printf 'jobs:\n  a:\n    steps:\n      - uses: actions/checkout@v4\n' >"$unpinned/w.yml"
for f in "$unpinned/Dockerfile" "$unpinned/w.yml"; do
  if python3 "$root/hack/verify-pins.py" "$f" 2>/dev/null; then
    echo "hack/verify-pins.py accepted an unpinned $f" >&2; rm -rf "$unpinned"; exit 1
  fi
done
rm -rf "$unpinned"

# Every deploy directory (hack/verify-manifests.sh: kustomize build, schema,
# security posture).
hack/verify-manifests.sh deploy/*/

step "Helm charts: generated from deploy/<x>, lint, default render = kustomize build"
hack/verify-charts.sh

echo
echo "hack/verify.sh: all checks passed"
