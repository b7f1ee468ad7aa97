#!/usr/bin/env bash
# The main job, on one machine with no cluster: kube-testserver as the API
# server, two fake nodes each with its own hostpath provisioner instance (the
# DaemonSet's pods, run locally, with roots under a temp dir), and kubectl
# doing what an operator does: `kubectl apply -f deploy/hostpath`, then the
# example claim and pod, until the claim is Bound; prints the PV and its
# directory on disk, then deletes the claim and checks both are gone.
#
# Usage: hack/local-up.sh [hostpath] [--keep]
#   --keep: stay up after the round trip (KUBECONFIG printed); Ctrl-C cleans up.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
keep=
for arg in "$@"; do
  case "$arg" in
    hostpath) ;;
    --keep) keep=--keep ;;
    *) echo "usage: hack/local-up.sh [hostpath] [--keep] (only hostpath has a local demo)" >&2; exit 2 ;;
  esac
done

work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

echo "==> building kube-testserver and hostpath-provisioner"
cargo build -q -p kube-testserver -p hostpath-provisioner
bin=$root/target/debug

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
export KUBECONFIG=$work/kubeconfig
"$bin/kube-testserver" --listen "127.0.0.1:$port" --kubeconfig-out "$KUBECONFIG" >"$work/apiserver.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do [ -s "$KUBECONFIG" ] && kubectl get ns >/dev/null 2>&1 && break; sleep 0.1; done
echo "==> API server on http://127.0.0.1:$port (KUBECONFIG=$KUBECONFIG)"

echo "==> kubectl apply -f deploy/hostpath"
kubectl apply -f deploy/hostpath

echo "==> two Ready nodes, each with its provisioner instance (the DaemonSet's pods, run locally)"
for node in node-a node-b; do
  kubectl apply -f - <<YAML
apiVersion: v1
kind: Node
metadata:
  name: $node
  labels: {kubernetes.io/hostname: $node}
status:
  conditions: [{type: Ready, status: "True"}]
YAML
  NODE_NAME=$node "$bin/hostpath-provisioner" --kubeconfig "$KUBECONFIG" \
    --root "$work/$node" --metrics-address 127.0.0.1:0 >"$work/provisioner-$node.log" 2>&1 &
  pids+=($!)
done

echo "==> kubectl apply -f deploy/hostpath/examples"
kubectl apply -f deploy/hostpath/examples
kubectl wait --for=jsonpath='{.status.phase}'=Bound pvc/hostpath-example --timeout=60s
kubectl get pvc hostpath-example
pv=$(kubectl get pvc hostpath-example -o jsonpath='{.spec.volumeName}')
dir=$(kubectl get pv "$pv" -o jsonpath='{.spec.hostPath.path}')
node=$(kubectl get pvc hostpath-example -o jsonpath='{.metadata.annotations.volume\.kubernetes\.io/selected-node}')
kubectl get pv "$pv"
echo "==> PV $pv is the directory $dir on $node:"
ls -ld "$dir"
case "$dir" in
  "$work/$node/"*) ;;
  *) echo "local-up: $dir is not under $node's root $work/$node" >&2; exit 1 ;;
esac

echo "==> deleting the claim: the directory and the PV go"
kubectl delete pod hostpath-example --wait=false
kubectl delete pvc hostpath-example
for _ in $(seq 100); do kubectl get pv "$pv" >/dev/null 2>&1 || break; sleep 0.1; done
if kubectl get pv "$pv" >/dev/null 2>&1 || [ -e "$dir" ]; then
  echo "demo: PV $pv or $dir still exists" >&2
  tail -20 "$work"/provisioner-*.log >&2
  exit 1
fi
echo "==> done: PV $pv and $dir are gone"

if [ "$keep" = "--keep" ]; then
  echo "Running; KUBECONFIG=$KUBECONFIG (try: kubectl apply -f deploy/hostpath/examples). Ctrl-C to stop."
  wait
fi
