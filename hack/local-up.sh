#!/usr/bin/env bash
# The main job, on one machine: a real Kubernetes control plane
# (hack/cluster.sh: etcd, kube-apiserver, kube-controller-manager,
# kube-scheduler, built from their Go modules on first use), two Nodes
# (one named by its FQDN, labelled with its short host name), each with its
# hostpath provisioner instance (the DaemonSet's pods, run locally as the
# deploy/ ServiceAccount, roots under a temp dir), and kubectl doing what an
# operator does: `kubectl apply -f deploy/hostpath`, then the example claim
# and pod, until the scheduler has placed the pod and the PV controller has
# bound the claim; prints the PV and its directory on disk, then deletes the
# claim and checks both are gone. No kubelet: the pod is scheduled, never run.
#
# Usage: hack/local-up.sh [hostpath] [--keep] [--testserver] [--helm]
#   --helm: install with `helm install` from deploy/hostpath/chart instead.
#   --keep:       stay up after the round trip (KUBECONFIG printed); Ctrl-C cleans up.
#   --testserver: kube-testserver instead of the real control plane (seconds, no Go).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
keep=
backend=real
installer=kubectl
for arg in "$@"; do
  case "$arg" in
    hostpath) ;;
    --keep) keep=--keep ;;
    --testserver) backend=testserver ;;
    --helm) installer=helm ;;
    *) echo "usage: hack/local-up.sh [hostpath] [--keep] [--testserver] [--helm] (only hostpath has a local demo)" >&2; exit 2 ;;
  esac
done

work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ "$backend" = real ]; then "$root/hack/cluster.sh" down "$work/cluster" >/dev/null 2>&1 || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

if [ "$backend" = testserver ]; then
  echo "==> building kube-testserver and hostpath-provisioner"
  cargo build -q -p kube-testserver -p hostpath-provisioner
else
  echo "==> building hostpath-provisioner"
  cargo build -q -p hostpath-provisioner
fi
bin=$root/target/debug
export KUBECONFIG=$work/kubeconfig
nodes=("node-a node-a" "node-b.cluster.example.com node-b")

if [ "$backend" = testserver ]; then
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  "$bin/kube-testserver" --listen "127.0.0.1:$port" --kubeconfig-out "$KUBECONFIG" >"$work/apiserver.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 100); do [ -s "$KUBECONFIG" ] && kubectl get ns >/dev/null 2>&1 && break; sleep 0.1; done
  echo "==> kube-testserver on http://127.0.0.1:$port (KUBECONFIG=$KUBECONFIG)"
else
  echo "==> the real control plane (hack/cluster.sh up; the first run builds it from the Go module proxy)"
  hack/cluster.sh up "$work/cluster"
  cp "$work/cluster/kubeconfig" "$KUBECONFIG"
fi

if [ "$installer" = helm ]; then
  helm=$(hack/install-helm.sh)
  # Helm keeps its release record in the namespace, so it makes the
  # namespace itself (--create-namespace) and the chart does not.
  echo "==> helm install hostpath deploy/hostpath/chart"
  "$helm" install hostpath deploy/hostpath/chart --namespace hostpath-provisioner \
    --create-namespace --set createNamespace=false --wait=false
else
  echo "==> kubectl apply -f deploy/hostpath"
  kubectl apply -f deploy/hostpath
fi

if [ "$backend" = testserver ]; then
  provisioner_kubeconfig=$KUBECONFIG
else
  # The binaries authenticate as the DaemonSet's ServiceAccount: the real
  # RBAC authorizer judges every call they make.
  provisioner_kubeconfig=$work/provisioner.kubeconfig
  hack/cluster.sh token "$work/cluster" hostpath-provisioner hostpath-provisioner >"$provisioner_kubeconfig"
fi

echo "==> two Ready nodes, each with its provisioner instance (the DaemonSet's pods, run locally)"
for entry in "${nodes[@]}"; do
  read -r node hostname <<<"$entry"
  if [ "$backend" = testserver ]; then
    kubectl apply -f - <<YAML
apiVersion: v1
kind: Node
metadata:
  name: $node
  labels: {kubernetes.io/hostname: $hostname}
status:
  conditions: [{type: Ready, status: "True"}]
YAML
  else
    hack/cluster.sh node "$work/cluster" "$node" "$hostname"
  fi
  NODE_NAME=$node "$bin/hostpath-provisioner" --kubeconfig "$provisioner_kubeconfig" \
    --root "$work/$node" --metrics-address 127.0.0.1:0 >"$work/provisioner-$node.log" 2>&1 &
  pids+=($!)
done

echo "==> kubectl apply -f deploy/hostpath/examples"
kubectl apply -f deploy/hostpath/examples
if ! kubectl wait --for=jsonpath='{.status.phase}'=Bound pvc/hostpath-example --timeout=60s; then
  tail -20 "$work"/provisioner-*.log >&2
  exit 1
fi
kubectl get pvc hostpath-example
pv=$(kubectl get pvc hostpath-example -o jsonpath='{.spec.volumeName}')
dir=$(kubectl get pv "$pv" -o jsonpath='{.spec.hostPath.path}')
node=$(kubectl get pvc hostpath-example -o jsonpath='{.metadata.annotations.volume\.kubernetes\.io/selected-node}')
kubectl get pv "$pv"
kubectl wait --for=jsonpath='{.spec.nodeName}'="$node" pod/hostpath-example --timeout=60s >/dev/null
echo "==> the scheduler placed pod hostpath-example on $node; PV $pv is the directory $dir there:"
ls -ld "$dir"
case "$dir" in
  "$work/$node/"*) ;;
  *) echo "local-up: $dir is not under $node's root $work/$node" >&2; exit 1 ;;
esac

echo "==> deleting the claim: the directory and the PV go"
# No kubelet confirms the pod's end: delete it at once.
kubectl delete pod hostpath-example --grace-period=0 --force 2>/dev/null
kubectl delete pvc hostpath-example
for _ in $(seq 300); do kubectl get pv "$pv" >/dev/null 2>&1 || break; sleep 0.1; done
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
