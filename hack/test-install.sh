#!/usr/bin/env bash
# The install paths, taken as an operator of a hardened cluster takes them:
# the real control plane with its workload controllers and PodSecurity
# admission enforcing (and warning at) `baseline` wherever a namespace has no
# label, one real node (node-1: kubelet and containerd on this machine) and
# one Windows Node object (win-1, no kubelet).
#
# For every provisioner and every install path (kubectl apply -f deploy/<x>,
# kubectl apply -k deploy/<x>, helm install -n <a namespace of the operator's
# choosing>):
#   - nothing prints a warning (PodSecurity's included);
#   - the workload's pods are created (no FailedCreate event), all on node-1,
#     none for the Windows node;
#   - applying again reports every object unchanged (helm: an upgrade with
#     the same chart leaves the workload's generation as it was);
#   - uninstalling (kubectl delete -f/-k, helm uninstall) leaves a PV of the
#     provisioner's class, bound to a claim, Bound.
# Also: `helm install --create-namespace` into a new namespace is refused
# before anything is created, with the label to set; and the upgrades, with
# real data (docs/pod-security.md, nfs/README.md "Upgrading"):
#   - hostpath, its image running: the README's example, then a volume
#     written by a pod as uid 1000 and read back by another, keeps its PV
#     Bound and its data through `kubectl apply` of deploy/ over the previous
#     release's, `kubectl delete -f`, `helm upgrade` from the previous
#     release's chart with its defaults (which made the namespace itself),
#     and `helm uninstall`; the provisioner then still deletes the volume
#     when its claim goes;
#   - local-volume, nfs and flex: `kubectl apply` of deploy/ over the
#     previous release's, `kubectl delete -f`, `helm upgrade` from its chart
#     with its defaults and `helm uninstall` keep a PV of each Bound, upgrade
#     the workload where it was, and for nfs (with the one step its README
#     gives) keep the server's disk (claim and PV) and the Service address
#     every PV names.
# Only hostpath's image runs here; every image running, nfs's data through a
# server restart and kubectl delete -f deploy/nfs included, is
# hack/test-node.sh.
#
# The previous release is the commit named in hack/previous-release (no
# release has been tagged yet); a clone without it skips the upgrade checks
# and says so.
#
# Usage: hack/test-install.sh
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
work=$(mktemp -d)
cluster=$work/cluster
suffix=-debug
NODE=node-1
export KUBECONFIG=$cluster/kubeconfig
# shellcheck source=node/e2e-lib.sh
source "$root/hack/node/e2e-lib.sh"
helm=$(hack/install-helm.sh)
provisioners=(hostpath local-volume nfs flex)

# Host directories the shipped hostPath volumes create on node-1; removed
# at the end if this run made them and they are empty.
host_dirs=(/var/lib/hostpath-provisioner /var/lib/local-volume-provisioner /mnt/fast-disks /var/lib/flex-example)
made_dirs=()
for d in "${host_dirs[@]}"; do [ -e "$d" ] || made_dirs+=("$d"); done

cleanup() {
  local rc=$?
  if [ $rc -ne 0 ]; then
    echo "==> failed: pods, events and the node's container logs" >&2
    kubectl get pods -A -o wide >&2 2>/dev/null || true
    kubectl get events -A --sort-by=.lastTimestamp 2>/dev/null | tail -n 30 >&2 || true
    "$root/hack/node.sh" logs "$cluster" >&2 2>/dev/null || true
  fi
  "$root/hack/node.sh" down "$cluster" >/dev/null 2>&1 || true
  "$root/hack/cluster.sh" down "$cluster" >/dev/null 2>&1 || true
  for d in "${made_dirs[@]}"; do rm -rf --one-file-system "${d:?}"; done
  rm -rf "$work"
  exit $rc
}
trap cleanup EXIT

step() { printf '==> %s\n' "$*"; }

# The previous release's deploy/ tree, or nothing when this clone lacks it.
previous=$(sed -n 's/^\([0-9a-f]\{40\}\).*/\1/p' hack/previous-release | head -n 1)
if git cat-file -e "$previous^{commit}" 2>/dev/null; then
  mkdir -p "$work/previous"
  git archive "$previous" deploy | tar -x -C "$work/previous"
else
  previous=
  echo "WARNING: SKIPPING the upgrade checks: this clone has no commit $(head -c 12 hack/previous-release) (hack/previous-release); fetch the full history to run them" >&2
fi

step "the real control plane (PodSecurity default: baseline), node-1 and a Windows Node object"
[ -f target/images/hostpath-provisioner$suffix.tar ] || hack/build-images.sh --debug hostpath >"$work/build.log" 2>&1 ||
  { tail -n 30 "$work/build.log" >&2; exit 1; }
hack/node.sh build >/dev/null
hack/cluster.sh up "$cluster" --kubelets --pod-security-default baseline
hack/node.sh up "$cluster" "$NODE"
import_image hostpath >/dev/null
hack/cluster.sh node "$cluster" win-1 >/dev/null
kubectl label node win-1 --overwrite kubernetes.io/os=windows >/dev/null

# A PV for nfs's export claim (the cluster has no default class): the
# StatefulSet's pod is scheduled only once its claim is bound.
export_pv() { # NAMESPACE
  # Made afresh: a Released one (its claim deleted with the namespace) would
  # not bind the next claim of the same name.
  kubectl delete pv "export-$1" --ignore-not-found --wait=true >/dev/null
  kubectl apply -f - >/dev/null <<YAML
apiVersion: v1
kind: PersistentVolume
metadata: {name: export-$1}
spec:
  capacity: {storage: 10Gi}
  accessModes: [ReadWriteOnce]
  persistentVolumeReclaimPolicy: Retain
  hostPath: {path: $work/export-$1, type: DirectoryOrCreate}
  claimRef: {namespace: $1, name: export-nfs-provisioner-0}
YAML
}

# The workload of provisioner $1: kind/name.
workload() {
  case $1 in
    hostpath | local-volume) echo "daemonset/$1-provisioner" ;;
    nfs) echo "statefulset/nfs-provisioner" ;;
    flex) echo "deployment/flex-provisioner" ;;
  esac
}

# live_pods NAMESPACE: "pod=node" for each pod not being deleted, from one
# read (node empty while unscheduled).
live_pods() {
  kubectl -n "$1" get pods -o jsonpath='{range .items[*]}{.metadata.name}={.spec.nodeName}={.metadata.deletionTimestamp}{"\n"}{end}' |
    awk -F= '$3 == "" { print $1 "=" $2 }'
}

# check_pods X NAMESPACE: the workload's controller has acted on its
# current spec (every pod it wants is of that spec), its pods select Linux
# nodes, none is refused (FailedCreate: PodSecurity's refusals are those)
# and every pod not being deleted is scheduled to node-1; a DaemonSet counts
# no Windows node among those it must serve.
check_pods() {
  local x=$1 ns=$2 w state want nodes failed desired
  w=$(workload "$x")
  case "${w%%/*}" in
    daemonset)
      state='{.status.observedGeneration}/{.status.updatedNumberScheduled}'
      want='{.metadata.generation}/{.status.desiredNumberScheduled}' ;;
    *)
      state='{.status.observedGeneration}/{.status.updatedReplicas}'
      want='{.metadata.generation}/{.spec.replicas}' ;;
  esac
  wait_for 120 "$x in $ns: $w has not made the pods of its current spec" \
    "[ \"\$(kubectl -n $ns get $w -o jsonpath='$state')\" = \"\$(kubectl -n $ns get $w -o jsonpath='$want')\" ]"
  [ "$(kubectl -n "$ns" get "$w" -o jsonpath='{.spec.template.spec.nodeSelector.kubernetes\.io/os}')" = linux ] ||
    fail "$x in $ns: $w's pods do not select kubernetes.io/os: linux"
  if [ "${w%%/*}" = daemonset ]; then
    desired=$(kubectl -n "$ns" get "$w" -o jsonpath='{.status.desiredNumberScheduled}')
    [ "$desired" = 1 ] || fail "$x in $ns: the DaemonSet wants $desired pods, one of them for the Windows node win-1"
  fi
  wait_for 120 "$x in $ns: its pods are not all scheduled" \
    "p=\$(live_pods $ns); [ -n \"\$p\" ] && ! echo \"\$p\" | grep -q '=\$'"
  failed=$(kubectl -n "$ns" get events --field-selector reason=FailedCreate -o jsonpath='{range .items[*]}{.message}{"\n"}{end}')
  [ -z "$failed" ] || fail "$x in $ns: FailedCreate: $failed"
  nodes=$(live_pods "$ns" | sed 's/^[^=]*=//' | sort -u)
  [ "$nodes" = "$NODE" ] || fail "$x in $ns: pods on $(echo "$nodes" | tr '\n' ' '), expected on $NODE only"
}

# no_warnings WHAT FILE
no_warnings() {
  if grep -i 'warning' "$2" >&2; then fail "$1 printed the warnings above"; fi
}

# all_unchanged WHAT FILE
all_unchanged() {
  if grep -v ' unchanged$' "$2" >&2; then fail "$1: applying again changed the objects above"; fi
}

# sentinel X: a PV of X's class bound to a claim in `default`; no install
# path may release or delete it. Retain, so that deleting it at the end
# asks nothing of a provisioner (the in-tree PV controller would hold a
# Delete PV of kubernetes.io/no-provisioner, local-volume's class, forever).
sentinel() {
  local x=$1 class
  class=$(sed -n 's/^  name: //p' "deploy/$x/04-storageclass.yaml" | head -n 1)
  kubectl apply -f - >/dev/null <<YAML
apiVersion: v1
kind: PersistentVolume
metadata:
  name: sentinel-$x
spec:
  capacity: {storage: 1Gi}
  accessModes: [ReadWriteOnce]
  persistentVolumeReclaimPolicy: Retain
  storageClassName: $class
  hostPath: {path: $work/sentinel-$x, type: DirectoryOrCreate}
  claimRef: {namespace: default, name: sentinel-$x}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: sentinel-$x, namespace: default}
spec:
  storageClassName: $class
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 1Gi}}
  volumeName: sentinel-$x
YAML
  wait_for 60 "sentinel PV of $x not Bound" "[ \"\$(kubectl get pv sentinel-$x -o jsonpath='{.status.phase}')\" = Bound ]"
}
still_bound() { # X WHAT
  [ "$(kubectl get pv "sentinel-$1" -o jsonpath='{.status.phase}' 2>/dev/null)" = Bound ] ||
    fail "$1: after $2 its PV is no longer Bound"
}

# install_paths X: the three install paths of provisioner X, one after the other.
install_paths() {
  local x=$1 ns="$1-provisioner" w out=$work/$1.out
  w=$(workload "$x")
  sentinel "$x"
  for how in -f -k; do
    [ "$x" != nfs ] || export_pv "$ns"
    kubectl apply "$how" "deploy/$x" >"$out" 2>&1 || { cat "$out" >&2; fail "kubectl apply $how deploy/$x"; }
    no_warnings "kubectl apply $how deploy/$x" "$out"
    check_pods "$x" "$ns"
    kubectl apply "$how" "deploy/$x" >"$out" 2>&1 || { cat "$out" >&2; fail "kubectl apply $how deploy/$x again"; }
    all_unchanged "kubectl apply $how deploy/$x" "$out"
    kubectl delete "$how" "deploy/$x" --wait=true >"$out" 2>&1 || { cat "$out" >&2; fail "kubectl delete $how deploy/$x"; }
    still_bound "$x" "kubectl delete $how deploy/$x"
    echo "$x: kubectl apply $how: pods on $NODE only, no warning or FailedCreate; again: unchanged; delete: its PV still Bound"
  done
  # Helm, into a namespace of the operator's choosing, made and labelled as
  # docs/pod-security.md says.
  ns="storage-$x"
  kubectl create namespace "$ns" >/dev/null
  kubectl label namespace "$ns" pod-security.kubernetes.io/enforce=privileged pod-security.kubernetes.io/warn=privileged >/dev/null
  [ "$x" != nfs ] || export_pv "$ns"
  "$helm" install "$x" "deploy/$x/chart" -n "$ns" >"$out" 2>&1 || { cat "$out" >&2; fail "helm install $x -n $ns"; }
  no_warnings "helm install $x -n $ns" "$out"
  check_pods "$x" "$ns"
  local generation
  generation=$(kubectl -n "$ns" get "$w" -o jsonpath='{.metadata.generation}')
  "$helm" upgrade "$x" "deploy/$x/chart" -n "$ns" >"$out" 2>&1 || { cat "$out" >&2; fail "helm upgrade $x -n $ns"; }
  no_warnings "helm upgrade $x -n $ns" "$out"
  [ "$(kubectl -n "$ns" get "$w" -o jsonpath='{.metadata.generation}')" = "$generation" ] ||
    fail "helm upgrade with the same chart changed $w in $ns"
  "$helm" uninstall "$x" -n "$ns" --wait >"$out" 2>&1 || { cat "$out" >&2; fail "helm uninstall $x -n $ns"; }
  still_bound "$x" "helm uninstall"
  kubectl get namespace "$ns" >/dev/null || fail "helm uninstall $x deleted namespace $ns"
  kubectl delete pvc "sentinel-$x" --wait=true >/dev/null
  kubectl delete pv "sentinel-$x" --wait=true >/dev/null
  echo "$x: helm install -n $ns: pods on $NODE only, no warning or FailedCreate; upgrade again: workload unchanged; uninstall: its PV still Bound, the namespace kept"
}

# in_parallel COMMAND...: runs each command (a function and its argument)
# in a subshell of its own, all at once (they touch different namespaces,
# classes and releases); prints each one's output in order once all ended,
# and fails if one did.
in_parallel() {
  local pids=() logs=() rc=0 i
  i=0
  for c in "$@"; do
    logs+=("$work/parallel-$i.log")
    (eval "$c") >"$work/parallel-$i.log" 2>&1 &
    pids+=($!)
    i=$((i + 1))
  done
  for i in "${!pids[@]}"; do
    wait "${pids[$i]}" || { rc=1; echo "FAILED: ${*:i+1:1}" >>"${logs[$i]}"; }
  done
  cat "${logs[@]}"
  [ $rc = 0 ] || fail "see the FAILED lines above"
}

step "every provisioner, every install path (the four provisioners at once)"
in_parallel "install_paths hostpath" "install_paths local-volume" "install_paths nfs" "install_paths flex"

step "helm install --create-namespace into a new namespace: refused before anything is created, naming the label"
if "$helm" install hostpath deploy/hostpath/chart -n fresh-ns --create-namespace >"$work/fresh.out" 2>&1; then
  fail "helm install into an unlabelled new namespace was accepted: on this cluster its pods would be refused"
fi
grep -q 'pod-security.kubernetes.io/enforce=privileged' "$work/fresh.out" ||
  { cat "$work/fresh.out" >&2; fail "the refusal does not name the label to set"; }
! kubectl get namespace fresh-ns >/dev/null 2>&1 || fail "the refused install made namespace fresh-ns"
echo "refused: $(sed -n 's/.*\(Namespace fresh-ns does not exist yet\)/\1/p' "$work/fresh.out" | cut -c1-160)..."

if [ -z "$previous" ]; then
  exit 0
fi
old=$work/previous/deploy
# The previous release's DaemonSets would put a pod on the Windows node (the
# defect checked above) and never finish rolling out: it goes.
kubectl delete node win-1 >/dev/null

hostpath_data() { # WHAT: the example volume is Bound and holds the token
  local phase
  phase=$(kubectl get pv "$pv" -o jsonpath='{.status.phase}' 2>/dev/null || echo gone)
  [ "$phase" = Bound ] || fail "after $1: PV $pv is $phase"
  [ "$(cat "$dir/token" 2>/dev/null)" = "$token" ] || fail "after $1: $dir/token does not hold what the pod wrote"
  echo "hostpath: after $1: PV $pv Bound, its data on $NODE"
}
rollout() { kubectl -n hostpath-provisioner rollout status ds/hostpath-provisioner --timeout=180s >/dev/null; }
hostpath_upgrade() {
  kubectl apply -f "$old/hostpath" >/dev/null 2>&1
  rollout
  # The README's example first: its pod writes "hello" into its claim.
  kubectl apply -f "$old/hostpath/examples" >/dev/null
  kubectl wait --for=condition=Ready pod/hostpath-example --timeout=180s >/dev/null
  pv=$(kubectl get pvc hostpath-example -o jsonpath='{.spec.volumeName}')
  dir=$(kubectl get pv "$pv" -o jsonpath='{.spec.hostPath.path}')
  wait_for 30 "the example pod wrote nothing into $dir/hello" "[ \"\$(cat $dir/hello 2>/dev/null)\" = hello ]"
  kubectl delete pod hostpath-example --wait=true >/dev/null
  token=$(write_then_read default hostpath-example 1000)
  kubectl apply -f deploy/hostpath >/dev/null
  rollout
  hostpath_data "kubectl apply -f deploy/hostpath over the previous release's"
  kubectl delete -f deploy/hostpath --wait=true >/dev/null
  hostpath_data "kubectl delete -f deploy/hostpath"
  # The previous chart with its defaults: it made the namespace itself (the
  # release lives in `default`).
  "$helm" install hostpath "$old/hostpath/chart" -n default >/dev/null 2>&1
  rollout
  "$helm" upgrade hostpath deploy/hostpath/chart -n default >"$work/upgrade.out" 2>&1 ||
    { cat "$work/upgrade.out" >&2; fail "helm upgrade from the previous chart"; }
  no_warnings "helm upgrade from the previous chart" "$work/upgrade.out"
  rollout
  [ "$(kubectl -n hostpath-provisioner get ds hostpath-provisioner -o jsonpath='{.spec.template.spec.nodeSelector.kubernetes\.io/os}')" = linux ] ||
    fail "helm upgrade did not roll the new chart out where the previous one installed"
  hostpath_data "helm upgrade from the previous chart"
  "$helm" uninstall hostpath -n default --wait >/dev/null
  kubectl get namespace hostpath-provisioner >/dev/null || fail "helm uninstall deleted the namespace the previous chart had made"
  hostpath_data "helm uninstall"
  # Installed again, the provisioner still owns the volume: a reader sees the
  # data, and deleting the claim deletes volume and PV. (kubectl warns that the
  # namespace Helm kept has no last-applied annotation: expected, and hidden.)
  kubectl apply -f deploy/hostpath >"$work/apply.out" 2>&1 || { cat "$work/apply.out" >&2; fail "kubectl apply -f deploy/hostpath"; }
  rollout
  workload_pod default last-reader hostpath-example "cat /data/token" 1000
  wait_phase default last-reader Succeeded
  [ "$(pod_output default last-reader | tail -n 1)" = "$token" ] || fail "the last reader did not read what the first writer wrote"
  kubectl delete pod last-reader --wait=true >/dev/null
  kubectl delete pvc hostpath-example >/dev/null
  wait_gone pv "$pv"
  [ ! -e "$dir" ] || fail "the claim was deleted but $dir is still there"
  kubectl delete -f deploy/hostpath --wait=true >/dev/null
  echo "hostpath: re-installed, it served the volume and deleted it with its claim"
}

# disk_identity: nfs's disk (claim uid and PV) and the address PVs name.
disk_identity() {
  echo "$(kubectl -n nfs-provisioner get pvc export-nfs-provisioner-0 -o jsonpath='{.metadata.uid}/{.spec.volumeName}')" \
    "$(kubectl -n nfs-provisioner get service nfs-provisioner -o jsonpath='{.spec.clusterIP}')"
}
export_bound() {
  wait_for 60 "nfs's export claim is not bound" \
    "[ \"\$(kubectl -n nfs-provisioner get pvc export-nfs-provisioner-0 -o jsonpath='{.status.phase}' 2>/dev/null)\" = Bound ]"
}
# not_ready_server NAMESPACE: nfs's image is not on this node, so the
# server pod the new StatefulSet adopts never becomes Ready, and a
# StatefulSet replaces only Ready pods in a rolling update: deleted, as
# nfs/README.md ("Upgrading") says for a server pod that is not Ready.
not_ready_server() {
  kubectl -n "$1" delete pod nfs-provisioner-0 --wait=false >/dev/null
}
upgrade_paths() {
  local x=$1 ns="$1-provisioner" out=$work/$1.up before w
  w=$(workload "$x")
  sentinel "$x"
  [ "$x" != nfs ] || export_pv "$ns"
  kubectl apply -f "$old/$x" >/dev/null 2>&1
  [ "$x" != nfs ] || { export_bound; before=$(disk_identity); }
  if ! kubectl apply -f "deploy/$x" >"$out" 2>&1; then
    # Only nfs has a documented step, and only for this error.
    [ "$x" = nfs ] && grep -q 'Forbidden: updates to statefulset spec' "$out" ||
      { cat "$out" >&2; fail "kubectl apply -f deploy/$x over the previous release"; }
    kubectl -n "$ns" delete "$w" --cascade=orphan --wait=true >/dev/null
    kubectl apply -f "deploy/$x" >"$out" 2>&1 || { cat "$out" >&2; fail "kubectl apply -f deploy/$x after the upgrade step"; }
    not_ready_server "$ns"
  elif [ "$x" = nfs ]; then
    fail "applying over the previous release's StatefulSet was accepted: nfs/README.md's upgrade step is out of date"
  fi
  no_warnings "kubectl apply -f deploy/$x over the previous release" "$out"
  check_pods "$x" "$ns"
  kubectl apply -f "deploy/$x" >"$out" 2>&1 || { cat "$out" >&2; fail "kubectl apply -f deploy/$x again after the upgrade"; }
  all_unchanged "kubectl apply -f deploy/$x after the upgrade" "$out"
  [ "$x" != nfs ] || [ "$(disk_identity)" = "$before" ] ||
    fail "nfs: kubectl apply over the previous release changed the server's disk or address ($before -> $(disk_identity))"
  still_bound "$x" "kubectl apply -f over the previous release"
  kubectl delete -f "deploy/$x" --wait=true >/dev/null
  still_bound "$x" "kubectl delete -f"
  echo "$x: kubectl apply -f over the previous release: pods on $NODE, again unchanged${before:+, the same disk and address}; delete -f: its PV Bound"
  # The previous chart with its defaults: it made the namespace itself, the
  # release record in `default`.
  [ "$x" != nfs ] || export_pv "$ns"
  "$helm" install "$x" "$old/$x/chart" -n default >/dev/null 2>&1
  if [ "$x" = nfs ]; then
    export_bound
    before=$(disk_identity)
    kubectl -n "$ns" delete "$w" --cascade=orphan --wait=true >/dev/null
  fi
  "$helm" upgrade "$x" "deploy/$x/chart" -n default >"$out" 2>&1 || { cat "$out" >&2; fail "helm upgrade $x from the previous chart"; }
  [ "$x" != nfs ] || not_ready_server "$ns"
  no_warnings "helm upgrade $x from the previous chart" "$out"
  [ "$(kubectl -n "$ns" get "$w" -o jsonpath='{.spec.template.spec.nodeSelector.kubernetes\.io/os}')" = linux ] ||
    fail "$x: helm upgrade did not roll the new chart out where the previous one installed"
  check_pods "$x" "$ns"
  [ "$x" != nfs ] || [ "$(disk_identity)" = "$before" ] ||
    fail "nfs: helm upgrade from the previous chart changed the server's disk or address ($before -> $(disk_identity))"
  still_bound "$x" "helm upgrade from the previous chart"
  "$helm" uninstall "$x" -n default --wait >/dev/null
  kubectl get namespace "$ns" >/dev/null || fail "$x: helm uninstall deleted the namespace the previous chart had made"
  still_bound "$x" "helm uninstall"
  kubectl delete namespace "$ns" --wait=true >/dev/null
  kubectl delete pvc "sentinel-$x" --wait=true >/dev/null
  kubectl delete pv "sentinel-$x" --wait=true >/dev/null
  echo "$x: helm upgrade from the previous chart: in place in $ns${before:+ on the same disk and address}, pods on $NODE; uninstall kept the namespace it had made and its PV Bound"
}
step "this release over the previous one, all four at once: hostpath with data (kubectl apply -f, delete -f, helm upgrade from its chart, helm uninstall); local-volume, nfs and flex (the same, with the step of nfs/README.md, Upgrading)"
in_parallel hostpath_upgrade "upgrade_paths local-volume" "upgrade_paths nfs" "upgrade_paths flex"
echo "test-install: all install paths passed"
