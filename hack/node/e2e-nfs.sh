# hack/test-node.sh's nfs scenario (sourced). The server: the shipped
# StatefulSet as a real pod on this machine's node under the runtime's
# seccomp enforcement (its Localhost profile, installed by its init
# container), its export disk a hostpath claim. First, with the container
# set back to RuntimeDefault, it must stay not Ready and provision nothing;
# with the shipped manifests the waiting claim is provisioned. The clients:
# pods on a qemu guest node (this machine has no kernel NFS client, so its
# kubelet cannot mount an NFS volume): two share the ReadWriteMany volume,
# the server pod is deleted and re-created while one writes, and nothing
# acknowledged is lost. Delete removes the export directory.
# The server's export disk: a claim of the cluster's default class, hostpath here.
import_image hostpath
kubectl apply -f deploy/hostpath >/dev/null
kubectl annotate storageclass hostpath storageclass.kubernetes.io/is-default-class=true --overwrite >/dev/null
kubectl -n hostpath-provisioner rollout status ds/hostpath-provisioner --timeout=180s
# First the defect a real runtime showed, kept from coming back: under the
# runtime's default profile (containerd before 1.6.22 / 1.7.3 allows
# name_to_handle_at only with CAP_SYS_ADMIN) Ganesha exports nothing. The
# pod must then stay not Ready, say why, and provision no claim. The shipped
# manifests with only the nfs container's profile set back to RuntimeDefault:
neg=$work/nfs-runtime-default
mkdir -p "$neg" && cp deploy/nfs/*.yaml "$neg/"
python3 - "$neg/03-statefulset.yaml" <<'PY'
import sys
p = sys.argv[1]
s = open(p).read()
t = s.replace("type: Localhost\n              localhostProfile: external-storage/nfs-ganesha.json", "type: RuntimeDefault")
assert t != s, "the nfs container's Localhost seccomp profile is not where this test expects it"
open(p, "w").write(t)
PY
kubectl apply -f "$neg" >/dev/null
claim default nfs-data nfs 1Gi ReadWriteMany
wait_for 180 "under RuntimeDefault the nfs server never said it cannot export" \
  "pod_output nfs-provisioner nfs-provisioner-0 | grep -q 'Ganesha cannot export'"
ready=$(kubectl -n nfs-provisioner get pod nfs-provisioner-0 -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}')
[ "$ready" != True ] || fail "under RuntimeDefault Ganesha cannot export, yet the nfs pod is Ready"
# The provisioner starts provisioning only once its server is ready.
[ "$(kubectl get pvc nfs-data -o jsonpath='{.status.phase}/{.spec.volumeName}')" = Pending/ ] ||
  fail "a claim was provisioned by a server that cannot export"
echo "nfs: under RuntimeDefault the pod stays not Ready ('Ganesha cannot export ... name_to_handle_at') and the claim Pending"

# The shipped manifests. A StatefulSet does not replace a pod that never got
# Ready (OrderedReady), so the operator's step is ours: delete it.
t_nfs=$(now)
kubectl apply -f deploy/nfs >/dev/null
kubectl -n nfs-provisioner delete pod nfs-provisioner-0 --wait=false >/dev/null
kubectl -n nfs-provisioner rollout status sts/nfs-provisioner --timeout=300s
echo "nfs: StatefulSet ready $(since "$t_nfs") s after apply"
seccomp=$(kubectl -n nfs-provisioner get pod nfs-provisioner-0 -o jsonpath='{.spec.containers[0].securityContext.seccompProfile.type}')
[ "$seccomp" = Localhost ] || fail "the nfs container runs with seccomp profile '$seccomp', not the shipped Localhost one"

# The claim that waited is provisioned now.
wait_jsonpath pvc/nfs-data default '{.status.phase}' Bound 120
pv=$(kubectl get pvc nfs-data -o jsonpath='{.spec.volumeName}')
path=$(kubectl get pv "$pv" -o jsonpath='{.spec.nfs.path}')
ip=$(kubectl -n nfs-provisioner get service nfs-provisioner -o jsonpath='{.spec.clusterIP}')
echo "nfs: claim provisioned under seccomp profile type $seccomp: $ip:$path"

# The clients: pods on a node with the kernel NFS client, a qemu guest
# (hack/node-vm.sh), where the kubelet mounts the PV (NFSv4.1, the class's
# mountOptions) through the Service's ClusterIP. One pod appends numbered
# lines as uid 1000 and acknowledges each once it is written and the file
# closed (the NFS client flushes on close); another pod on the same
# ReadWriteMany claim reads them.
t_guest=$(now)
"$root/hack/node-vm.sh" up "$cluster" "$GUEST"
echo "nfs: guest node $GUEST (kernel NFS client) Ready in $(since "$t_guest") s"
# guest_pod NAME SCRIPT: a uid-1000 pod on the guest with the claim at /data.
guest_pod() {
  kubectl apply -f - >/dev/null <<YAML
apiVersion: v1
kind: Pod
metadata: {name: $1, namespace: default}
spec:
  nodeSelector: {kubernetes.io/hostname: $GUEST}
  restartPolicy: Never
  terminationGracePeriodSeconds: 5
  securityContext: {runAsUser: 1000, runAsGroup: 1000, runAsNonRoot: true, seccompProfile: {type: RuntimeDefault}}
  containers:
    - name: app
      image: busybox:1.36
      command: ["sh", "-c", $(printf '%s' "$2" | python3 -c 'import json,sys; print(json.dumps(sys.stdin.read()))')]
      securityContext: {allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: {drop: [ALL]}}
      volumeMounts: [{name: data, mountPath: /data}]
  volumes:
    - name: data
      persistentVolumeClaim: {claimName: nfs-data}
YAML
}
# guest_out POD: the pod's container output (the guest's /var/log/pods).
guest_out() { "$root/hack/node-vm.sh" exec "$cluster" "$GUEST" "cat /var/log/pods/default_$1_*/app/0.log | cut -d' ' -f4-"; }
# acked POD: the highest line number the writer acknowledged.
acked() { guest_out nfs-writer | sed -n 's/^ack \([0-9]*\)$/\1/p' | tail -n 1 | grep . || echo 0; }
guest_pod nfs-writer 'trap "exit 0" TERM; i=0; while :; do i=$((i + 1)); echo "line $i" >>/data/log && echo "ack $i" || echo "write $i failed"; sleep 0.5 & wait; done'
guest_pod nfs-reader 'trap "exit 0" TERM; tail -F /data/log & wait'
kubectl wait --for=condition=Ready pod/nfs-writer pod/nfs-reader --timeout=300s >/dev/null
wait_for 120 "the reader pod never saw the writer pod's lines" "guest_out nfs-reader | grep -q '^line 3$'"
mounts=$("$root/hack/node-vm.sh" exec "$cluster" "$GUEST" "grep ' nfs4 ' /proc/mounts | cut -d' ' -f1-4")
echo "nfs: two pods on $GUEST share the ReadWriteMany volume through the kubelet's mount: $mounts"
# Only the Nodes may mount (docs/security.md, hole 9): the server's list is
# the Nodes' addresses and pod-CIDR gateways (the guest's mount reaches it
# from node-1's bridge gateway), no private range that would admit pods.
admitted=$(pod_output nfs-provisioner nfs-provisioner-0 | grep -E 'starting|who may mount changed' | tail -n 1 | grep -o 'clients=.*')
case "$admitted" in
  *10.244.0.1*) ;;
  *) fail "nfs: the server does not admit node-1's pod-CIDR gateway 10.244.0.1: ${admitted:-no client list logged}" ;;
esac
case "$admitted" in
  */8* | */12* | */16*) fail "nfs: the server admits a whole range, not only Nodes: $admitted" ;;
esac
echo "nfs: only Nodes may mount: $admitted"
# A node joins and leaves (a Node object at a documentation address): the
# server updates every export in place twice; the guest's mount, on the
# list all along, keeps writing through both updates.
kubectl create -f - >/dev/null <<YAML
apiVersion: v1
kind: Node
metadata: {name: passing-node}
YAML
kubectl patch node passing-node --subresource=status --type merge \
  -p '{"status":{"addresses":[{"type":"InternalIP","address":"203.0.113.7"}]}}' >/dev/null
wait_for 60 "the server never admitted the new node 203.0.113.7" \
  "pod_output nfs-provisioner nfs-provisioner-0 | grep 'admits the new client list' | grep -q 203.0.113.7"
kubectl delete node passing-node >/dev/null
wait_for 60 "the server never cut off the deleted node 203.0.113.7" \
  "pod_output nfs-provisioner nfs-provisioner-0 | grep 'admits the new client list' | tail -n 1 | grep -vq 203.0.113.7"
during=$(acked)
wait_for 60 "the guest's writes stopped after the node list changed (acknowledged: $during)" \
  '[ "$(acked)" -ge $((during + 3)) ]'
! guest_out nfs-writer | grep -E 'failed|Stale|stale' || fail "the writer saw failed writes while the node list changed"
echo "nfs: a node joined and left (exports updated in place twice); the guest's mount kept writing"

# The server pod is deleted and re-created by its StatefulSet while the
# writer writes: its writes block, then resume on the new server (the
# client reclaims its state in the grace period); nothing acknowledged is
# lost, and no write fails (no stale file handle).
before=$(acked)
uid=$(kubectl -n nfs-provisioner get pod nfs-provisioner-0 -o jsonpath='{.metadata.uid}')
t_restart=$(now)
kubectl -n nfs-provisioner delete pod nfs-provisioner-0 --wait=false >/dev/null
# server_state: the server pod's uid and Ready condition.
server_state() {
  kubectl -n nfs-provisioner get pod nfs-provisioner-0 \
    -o jsonpath='{.metadata.uid}/{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null || true
}
wait_for 300 "the re-created nfs server pod is not Ready" \
  'state=$(server_state); [ "${state%/*}" != "$uid" ] && [ "${state#*/}" = True ]'
echo "nfs: server pod deleted, re-created and Ready in $(since "$t_restart") s (the writer had acknowledged $before lines)"
at_ready=$(acked)
wait_for 240 "writes did not resume after the new server's start (acknowledged when it was Ready: $at_ready)" \
  '[ "$(acked)" -ge $((at_ready + 5)) ]'
echo "nfs: writes resumed $(since "$t_restart") s after the server pod was deleted"
kubectl delete pod nfs-writer --wait=true >/dev/null
last=$(acked)
! guest_out nfs-writer | grep -E 'failed|Stale|stale' || fail "the writer saw failed writes across the server's restart"
guest_pod nfs-check "for i in \$(seq 1 $last); do grep -qx \"line \$i\" /data/log || { echo missing \$i; exit 1; }; done; echo all $last lines"
wait_phase default nfs-check Succeeded 300
echo "nfs: $(guest_out nfs-check | tail -n 1) acknowledged before, during and after the restart are on the server"
kubectl delete pod nfs-reader nfs-check --wait=true >/dev/null

export_pv=$(kubectl -n nfs-provisioner get pvc export-nfs-provisioner-0 -o jsonpath='{.spec.volumeName}')
export_dir=$(kubectl get pv "$export_pv" -o jsonpath='{.spec.hostPath.path}')
[ -d "$export_dir/${path#/export/}" ] || fail "the export directory $export_dir/${path#/export/} is not on the server's disk"
kubectl delete pvc nfs-data >/dev/null
wait_gone pv "$pv"
[ ! -e "$export_dir/${path#/export/}" ] || fail "reclaimPolicy Delete: $export_dir/${path#/export/} still exists"
echo "nfs: Delete removed PV $pv and its export directory"
# The server made its own disk's PV Retain at start: removing the
# provisioner (its namespace, and with it the export claim) keeps the data.
[ "$(kubectl get pv "$export_pv" -o jsonpath='{.spec.persistentVolumeReclaimPolicy}')" = Retain ] ||
  fail "the export disk's PV $export_pv is not Retain: deleting the namespace would delete every volume's data"
kubectl delete -f deploy/nfs --wait=true >/dev/null
kubectl get pv "$export_pv" >/dev/null 2>&1 || fail "kubectl delete -f deploy/nfs deleted the export disk's PV $export_pv"
[ -d "$export_dir" ] || fail "kubectl delete -f deploy/nfs deleted the export disk $export_dir"
echo "nfs: kubectl delete -f deploy/nfs kept the export disk: PV $export_pv is $(kubectl get pv "$export_pv" -o jsonpath='{.status.phase}') with its data"
# What an operator does once that data is no longer wanted.
kubectl patch pv "$export_pv" -p '{"spec":{"persistentVolumeReclaimPolicy":"Delete"}}' >/dev/null
wait_gone pv "$export_pv"
