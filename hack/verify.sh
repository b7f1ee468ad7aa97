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

# Every deploy directory (hack/verify-manifests.sh: kustomize build, schema,
# security posture).
hack/verify-manifests.sh deploy/*/

echo
echo "hack/verify.sh: all checks passed"
