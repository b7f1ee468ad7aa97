#!/usr/bin/env bash
# Builds helm from its Go module (the module proxy is reachable; release
# downloads are not) into ~/.cache/external-storage/helm-<version>/ once,
# and prints the binary's path. Usage: hack/install-helm.sh
set -euo pipefail
version=v3.22.0
dir="${XDG_CACHE_HOME:-$HOME/.cache}/external-storage/helm-$version"
if [ ! -x "$dir/helm" ]; then
  mkdir -p "$dir"
  echo "building helm $version from helm.sh/helm/v3 (once; a few minutes cold)" >&2
  GOBIN="$dir" GOFLAGS=-mod=mod go install "helm.sh/helm/v3/cmd/helm@$version" >&2
fi
echo "$dir/helm"
