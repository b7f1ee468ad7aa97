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

# Pinned tool versions (PyPI; both work offline once installed).
KUBERNETES_VALIDATE_VERSION=1.37.0
CHECKOV_VERSION=3.3.30
K8S_SCHEMA_VERSION=1.33.0

# The Python tools live in their own virtualenv under target/, so they never
# touch the system's packages.
venv="$root/target/verify-venv"
ensure_python_tools() {
  if [ ! -x "$venv/bin/checkov" ] || [ ! -x "$venv/bin/kubernetes-validate" ]; then
    step "installing kubernetes-validate $KUBERNETES_VALIDATE_VERSION and checkov $CHECKOV_VERSION (PyPI, into $venv)"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check \
      "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION" "checkov==$CHECKOV_VERSION"
  fi
  export PATH="$venv/bin:$PATH"
}

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy --all-targets -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "dependency licenses"
# cargo-deny needs its advisory database from GitHub, which our machines
# cannot reach, and building it costs minutes per CI run; the license half of
# its job is a read of `cargo metadata` against our allow-list.
cargo metadata --format-version 1 --locked | python3 "$root/hack/check-licenses.py"

ensure_python_tools
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for dir in deploy/*/; do
  name=$(basename "$dir")
  step "deploy/$name: kustomize build, schema, security"
  kubectl kustomize "$dir" >"$tmp/$name.yaml"
  kubernetes-validate --quiet --strict --kubernetes-version "$K8S_SCHEMA_VERSION" "$tmp/$name.yaml"
  for ex in "$dir"examples/*.yaml; do
    [ -e "$ex" ] || continue
    kubernetes-validate --quiet --strict --kubernetes-version "$K8S_SCHEMA_VERSION" "$ex"
  done
  # Findings we accept are skipped inline in the manifests, each with its reason
  # (checkov.io/skip annotations); anything else fails here.
  checkov --quiet --compact --skip-download --framework kubernetes -f "$tmp/$name.yaml" \
    >"$tmp/$name.checkov" 2>&1 || { cat "$tmp/$name.checkov"; exit 1; }
  grep -E "^(Passed|Failed) checks" "$tmp/$name.checkov" || true
done

echo
echo "hack/verify.sh: all checks passed"
