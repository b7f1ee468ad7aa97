# hack/test-node.sh's nfs scenario (sourced), on this machine's node: the
# shipped StatefulSet as a real pod under the runtime's seccomp enforcement
# (its Localhost profile, installed by its init container), its export disk a
# hostpath claim; a claim is provisioned (no export was ever made under the
# runtime's default profile), the pod is Ready only once Ganesha exports;
# a client writes as uid 1000, the server pod is deleted and re-created by
# its StatefulSet, and the data reads back and writes resume; Delete removes
# the export directory.
#
# The client is libnfs (nfs-cp/nfs-cat) from this machine, through the
# Service's ClusterIP: this machine has no kernel NFS client, so the kubelet
# cannot mount an NFS volume here (that needs a node with one).
kubectl apply -f deploy/hostpath >/dev/null
kubectl annotate storageclass hostpath storageclass.kubernetes.io/is-default-class=true --overwrite >/dev/null
kubectl -n hostpath-provisioner rollout status ds/hostpath-provisioner --timeout=180s
t_nfs=$(now)
kubectl apply -f deploy/nfs >/dev/null
kubectl -n nfs-provisioner rollout status sts/nfs-provisioner --timeout=300s
echo "nfs: StatefulSet ready $(since "$t_nfs") s after apply"
seccomp=$(kubectl -n nfs-provisioner get pod nfs-provisioner-0 -o jsonpath='{.spec.containers[0].securityContext.seccompProfile.type}')
[ "$seccomp" != Unconfined ] || fail "the nfs container runs Unconfined"

claim default nfs-data nfs 1Gi ReadWriteMany
wait_jsonpath pvc/nfs-data default '{.status.phase}' Bound 120
pv=$(kubectl get pvc nfs-data -o jsonpath='{.spec.volumeName}')
path=$(kubectl get pv "$pv" -o jsonpath='{.spec.nfs.path}')
ip=$(kubectl -n nfs-provisioner get service nfs-provisioner -o jsonpath='{.spec.clusterIP}')
url="nfs://$ip$path/token?version=4&uid=1000&gid=1000"
echo "nfs: claim provisioned under seccomp profile type $seccomp: $ip:$path"

nfs_write() { printf '%s\n' "$1" >"$work/token" && nfs-cp "$work/token" "$url"; }
token=before-restart-$(date +%s%N)
nfs_write "$token" || fail "nfs-cp to $url failed"
[ "$(nfs-cat "$url")" = "$token" ] || fail "nfs-cat did not read back what was written"
echo "nfs: written and read back as uid 1000 through $ip"

uid=$(kubectl -n nfs-provisioner get pod nfs-provisioner-0 -o jsonpath='{.metadata.uid}')
t_restart=$(now)
kubectl -n nfs-provisioner delete pod nfs-provisioner-0 --wait=false >/dev/null
deadline=$((SECONDS + 300))
until [ "$(kubectl -n nfs-provisioner get pod nfs-provisioner-0 -o jsonpath='{.metadata.uid}/{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null)" != "$uid/True" ] &&
  [ "$(kubectl -n nfs-provisioner get pod nfs-provisioner-0 -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null)" = True ]; do
  [ $SECONDS -lt $deadline ] || fail "the re-created nfs server pod is not Ready after 300 s"
  sleep 0.5
done
echo "nfs: server pod deleted, re-created and Ready in $(since "$t_restart") s"
[ "$(nfs-cat "$url")" = "$token" ] || fail "after the server's restart the data written before it is not read back"
token=after-restart-$(date +%s%N)
nfs_write "$token" || fail "writing after the server's restart failed"
[ "$(nfs-cat "$url")" = "$token" ] || fail "nfs-cat did not read back the write made after the restart"
echo "nfs: data from before the restart read back, writes resumed"

export_pv=$(kubectl -n nfs-provisioner get pvc export-nfs-provisioner-0 -o jsonpath='{.spec.volumeName}')
export_dir=$(kubectl get pv "$export_pv" -o jsonpath='{.spec.hostPath.path}')
[ -d "$export_dir/${path#/export/}" ] || fail "the export directory $export_dir/${path#/export/} is not on the server's disk"
kubectl delete pvc nfs-data >/dev/null
wait_gone pv "$pv"
[ ! -e "$export_dir/${path#/export/}" ] || fail "reclaimPolicy Delete: $export_dir/${path#/export/} still exists"
echo "nfs: Delete removed PV $pv and its export directory"
kubectl delete -f deploy/nfs --wait=true >/dev/null
