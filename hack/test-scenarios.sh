#!/usr/bin/env bash
# The end-to-end scenarios of every provisioner and the API conformance
# suite, on one control plane: `real` (etcd, kube-apiserver,
# kube-controller-manager, kube-scheduler from hack/cluster.sh; each test
# starts its own) or `testserver` (kube-testserver, in process). Prints one
# line per test, `<backend>: <test> ok`; on a failure, the whole output of
# that test binary.
#
# Usage: hack/test-scenarios.sh real|testserver
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
backend=${1:-}
case "$backend" in
  real) hack/cluster.sh build >/dev/null ;;
  testserver) ;;
  *) echo "usage: hack/test-scenarios.sh real|testserver" >&2; exit 2 ;;
esac

# package and test target, one pair per line; every `tests/scenario.rs`
# of a provisioner crate is found, so a new provisioner's joins by itself.
targets=$(
  for f in */tests/scenario.rs; do
    crate=${f%%/*}
    pkg=$(sed -n 's/^name = "\(.*\)"/\1/p' "$crate/Cargo.toml" | head -1)
    echo "$pkg scenario"
  done
  # cluster_sh tests hack/cluster.sh itself: real only.
  for t in conformance cluster_sh; do
    if [ "$t" = cluster_sh ] && [ "$backend" != real ]; then continue; fi
    if [ -f "hack/e2e-support/tests/$t.rs" ]; then echo "e2e-support $t"; fi
  done
  for f in lib/tests/real*.rs; do
    if [ -f "$f" ]; then echo "external-storage $(basename "$f" .rs)"; fi
  done
)

failed=0
log=$(mktemp)
trap 'rm -f "$log"' EXIT
while read -r pkg test; do
  if E2E_CLUSTER=$backend cargo test --locked -p "$pkg" --test "$test" >"$log" 2>&1; then
    sed -n "s/^test \(.*\) \.\.\. ok$/$backend: $pkg \1 ok/p" "$log"
  else
    echo "$backend: $pkg --test $test FAILED:"
    cat "$log"
    failed=1
  fi
done <<<"$targets"
exit $failed
