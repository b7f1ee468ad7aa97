#!/usr/bin/env bash
# The main job, on one machine: a real Kubernetes control plane
# (hack/cluster.sh: etcd, kube-apiserver, kube-controller-manager,
# kube-scheduler, built from their Go modules on first use) and a real node
# (hack/node.sh: kubelet, containerd, runc, CNI bridge, kube-proxy), and
# kubectl doing what an operator does: `kubectl apply -f deploy/hostpath`
# (the shipped DaemonSet runs as a real pod from the image
# hack/build-images.sh builds, imported under the name deploy/ uses), then
# the example claim and pod: the kubelet mounts the volume, the pod writes
# /data/hello, and the run prints that file as read on the node. Then the
# claim is deleted and the PV and directory must go.
#
# --testserver is the quick variant: kube-testserver, two API-object Nodes
# (one named by its FQDN, labelled with its short host name), each with its
# hostpath provisioner instance run locally (no kubelet: the pod is
# scheduled, never run).
#
# Usage: hack/local-up.sh [hostpath] [--keep] [--testserver] [--helm]
#   --helm:       install with `helm install` from deploy/hostpath/chart instead.
#   --keep:       stay up after the round trip (KUBECONFIG printed); Ctrl-C cleans up.
#   --testserver: kube-testserver and local processes instead of the real control plane and node (seconds, no Go).
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
made_root=
[ -e /var/lib/hostpath-provisioner ] || made_root=/var/lib/hostpath-provisioner
pids=()
cleanup() {
  local rc=$?
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ "$backend" = real ]; then
    if [ $rc -ne 0 ]; then
      echo "==> failed: the node's container logs" >&2
      "$root/hack/node.sh" logs "$work/cluster" >&2 || true
    fi
    "$root/hack/node.sh" down "$work/cluster" >/dev/null 2>&1 || true
    "$root/hack/cluster.sh" down "$work/cluster" >/dev/null 2>&1 || true
    # The DaemonSet's hostPath root, if this run made it.
    [ -n "$made_root" ] && rm -rf --one-file-system "$made_root"
  fi
  rm -rf "$work"
  exit $rc
}
trap cleanup EXIT

if [ "$backend" = testserver ]; then
  echo "==> building kube-testserver and hostpath-provisioner"
  cargo build -q -p kube-testserver -p hostpath-provisioner
else
  echo "==> the hostpath image (hack/build-images.sh --debug hostpath) and the node's binaries and images (hack/node.sh build)"
  hack/build-images.sh --debug hostpath >"$work/build-images.log" 2>&1 ||
    { tail -n 30 "$work/build-images.log" >&2; exit 1; }
  hack/node.sh build
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
  echo "==> the real control plane and a real node (hack/cluster.sh up --kubelets, hack/node.sh up)"
  hack/cluster.sh up "$work/cluster" --kubelets
  cp "$work/cluster/kubeconfig" "$KUBECONFIG"
  hack/node.sh up "$work/cluster" node-1
  image=$(grep -ho 'image: *[^ ]*' deploy/hostpath/03-daemonset.yaml | awk '{ print $2 }')
  hack/node.sh import "$work/cluster" target/images/hostpath-provisioner-debug.tar "$image"
  echo "==> imported target/images/hostpath-provisioner-debug.tar as $image"
fi

if [ "$installer" = helm ]; then
  helm=$(hack/install-helm.sh)
  # The chart installs into the release namespace and never makes it: the
  # namespace first, labelled for the privileged pods it runs
  # (docs/pod-security.md); the chart refuses a namespace without the label.
  echo "==> helm install hostpath deploy/hostpath/chart -n hostpath-provisioner"
  kubectl create namespace hostpath-provisioner
  kubectl label namespace hostpath-provisioner pod-security.kubernetes.io/enforce=privileged \
    pod-security.kubernetes.io/warn=privileged
  "$helm" install hostpath deploy/hostpath/chart --namespace hostpath-provisioner --wait=false
else
  echo "==> kubectl apply -f deploy/hostpath"
  kubectl apply -f deploy/hostpath
fi

if [ "$backend" = real ]; then
  kubectl -n hostpath-provisioner rollout status ds/hostpath-provisioner --timeout=180s
  node=$(kubectl -n hostpath-provisioner get pods -o jsonpath='{.items[0].spec.nodeName}')
  echo "==> the DaemonSet's pod runs on node $node"
  echo "==> kubectl apply -f deploy/hostpath/examples"
  kubectl apply -f deploy/hostpath/examples
  kubectl wait --for=condition=Ready pod/hostpath-example --timeout=180s
  pv=$(kubectl get pvc hostpath-example -o jsonpath='{.spec.volumeName}')
  dir=$(kubectl get pv "$pv" -o jsonpath='{.spec.hostPath.path}')
  kubectl get pvc hostpath-example
  kubectl get pv "$pv"
  for _ in $(seq 100); do [ -s "$dir/hello" ] && break; sleep 0.1; done
  echo "==> the pod wrote into its volume; on node $node, $dir/hello holds:"
  ls -ln "$dir/hello"
  cat "$dir/hello"
  [ "$(cat "$dir/hello")" = hello ] || { echo "local-up: $dir/hello does not hold what the pod wrote" >&2; exit 1; }
  echo "==> deleting the pod and the claim: the PV and the directory go"
  t0=$SECONDS
  kubectl delete pod hostpath-example
  echo "    pod stopped and deleted in $((SECONDS - t0)) s"
  kubectl delete pvc hostpath-example
  for _ in $(seq 600); do kubectl get pv "$pv" >/dev/null 2>&1 || break; sleep 0.1; done
  if kubectl get pv "$pv" >/dev/null 2>&1 || [ -e "$dir" ]; then
    echo "local-up: PV $pv or $dir still exists" >&2
    exit 1
  fi
  echo "==> done: PV $pv and $dir are gone"
  if [ "$keep" = "--keep" ]; then
    echo "Running; KUBECONFIG=$KUBECONFIG (try: kubectl apply -f deploy/hostpath/examples; pod logs in /var/log/pods). Ctrl-C to stop."
    sleep infinity &
    wait
  fi
  exit 0
fi

provisioner_kubeconfig=$KUBECONFIG

echo "==> two Ready nodes, each with its provisioner instance (the DaemonSet's pods, run locally)"
for entry in "${nodes[@]}"; do
  read -r node hostname <<<"$entry"
  kubectl apply -f - <<YAML
apiVersion: v1
kind: Node
metadata:
  name: $node
  labels: {kubernetes.io/hostname: $hostname}
status:
  conditions: [{type: Ready, status: "True"}]
YAML
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
