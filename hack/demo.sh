#!/usr/bin/env bash
# The main job, on one machine with no cluster: kube-testserver as the API
# server, the hostpath provisioner as its node's instance, and kubectl doing
# what an operator does: `kubectl apply -f deploy/hostpath`, then the example
# claim and pod, until the claim is Bound and its directory exists.
#
# Usage: hack/demo.sh [--keep]   (--keep: leave everything running; Ctrl-C ends it)
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
keep=${1:-}

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

echo "==> a Ready node, and its provisioner instance (the DaemonSet's pod, run locally)"
kubectl apply -f - <<'YAML'
apiVersion: v1
kind: Node
metadata:
  name: demo-node
  labels: {kubernetes.io/hostname: demo-node}
status:
  conditions: [{type: Ready, status: "True"}]
YAML
NODE_NAME=demo-node "$bin/hostpath-provisioner" --kubeconfig "$KUBECONFIG" \
  --root "$work/volumes" --metrics-address 127.0.0.1:0 >"$work/provisioner.log" 2>&1 &
pids+=($!)

echo "==> kubectl apply -f deploy/hostpath/examples"
kubectl apply -f deploy/hostpath/examples
kubectl wait --for=jsonpath='{.status.phase}'=Bound pvc/hostpath-example --timeout=60s
kubectl get pvc hostpath-example
pv=$(kubectl get pvc hostpath-example -o jsonpath='{.spec.volumeName}')
dir=$(kubectl get pv "$pv" -o jsonpath='{.spec.hostPath.path}')
echo "==> PV $pv is the directory $dir:"
ls -ld "$dir"

echo "==> deleting the claim: the directory and the PV go"
kubectl delete pod hostpath-example --wait=false
kubectl delete pvc hostpath-example
for _ in $(seq 100); do kubectl get pv "$pv" >/dev/null 2>&1 || break; sleep 0.1; done
if kubectl get pv "$pv" >/dev/null 2>&1 || [ -e "$dir" ]; then
  echo "demo: PV $pv or $dir still exists" >&2
  tail -20 "$work/provisioner.log" >&2
  exit 1
fi
echo "==> done: PV $pv and $dir are gone"

if [ "$keep" = "--keep" ]; then
  echo "Running; KUBECONFIG=$KUBECONFIG. Ctrl-C to stop."
  wait
fi
