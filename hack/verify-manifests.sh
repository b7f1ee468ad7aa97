#!/usr/bin/env bash
# The manifest half of hack/verify.sh, for any deploy directories: kustomize
# build, schema validation (strict) of the build and of examples/*.yaml, the
# workload rules of hack/check-workloads.py, and
# security posture (checkov; accepted findings are skipped inline in the
# manifests with their reason, anything else fails). hack/verify.sh runs it
# on every deploy/*/; hack/test-new-provisioner.sh on a scaffolded one.
#
# Usage: hack/verify-manifests.sh DIR...
# The Python tools live in a virtualenv, by default target/verify-venv of
# this checkout (VERIFY_VENV to use another, e.g. a copy's original's).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
step() { printf '\n==> %s\n' "$*"; }
[ $# -ge 1 ] || { echo "usage: hack/verify-manifests.sh DIR..." >&2; exit 2; }

# Pinned tool versions (PyPI; both work offline once installed).
KUBERNETES_VALIDATE_VERSION=1.37.0
CHECKOV_VERSION=3.3.30
K8S_SCHEMA_VERSION=1.33.0

# The Python tools live in their own virtualenv under target/, so they never
# touch the system's packages.
venv="${VERIFY_VENV:-$root/target/verify-venv}"
ensure_python_tools() {
  if [ ! -x "$venv/bin/checkov" ] || [ ! -x "$venv/bin/kubernetes-validate" ]; then
    step "installing kubernetes-validate $KUBERNETES_VALIDATE_VERSION and checkov $CHECKOV_VERSION (PyPI, into $venv)"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check \
      "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION" "checkov==$CHECKOV_VERSION"
  fi
  export PATH="$venv/bin:$PATH"
}

ensure_python_tools
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for dir in "$@"; do
  dir=${dir%/}/
  name=$(basename "$dir")
  step "deploy/$name: kustomize build, schema, security"
  kubectl kustomize "$dir" >"$tmp/$name.yaml"
  kubernetes-validate --quiet --strict --kubernetes-version "$K8S_SCHEMA_VERSION" "$tmp/$name.yaml"
  # Linux nodes only, headless governing Services, claim templates as stored.
  "$venv/bin/python3" "$root/hack/check-workloads.py" "$tmp/$name.yaml"
  for ex in "$dir"examples/*.yaml "$dir"optional/*.yaml; do
    [ -e "$ex" ] || continue
    kubernetes-validate --quiet --strict --kubernetes-version "$K8S_SCHEMA_VERSION" "$ex"
  done
  # Opt-in manifests (optional/*.yaml) get the same security checks.
  for opt in "$dir"optional/*.yaml; do
    [ -e "$opt" ] || continue
    checkov --quiet --compact --skip-download --framework kubernetes -f "$opt" \
      >"$tmp/$name.optional.checkov" 2>&1 || { cat "$tmp/$name.optional.checkov"; exit 1; }
  done
  # Findings we accept are skipped inline in the manifests, each with its reason
  # (checkov.io/skip annotations); anything else fails here.
  checkov --quiet --compact --skip-download --framework kubernetes -f "$tmp/$name.yaml" \
    >"$tmp/$name.checkov" 2>&1 || { cat "$tmp/$name.checkov"; exit 1; }
  grep -E "^(Passed|Failed) checks" "$tmp/$name.checkov" || true
done
