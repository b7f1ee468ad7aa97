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
deadline=$((SECONDS + 180))
until pod_output nfs-provisioner nfs-provisioner-0 | grep -q 'Ganesha cannot export'; do
  [ $SECONDS -lt $deadline ] || fail "under RuntimeDefault the nfs server never said it cannot export"
  sleep 0.5
done
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
url="nfs://$ip$path/token?version=4&uid=1000&gid=1000"
echo "nfs: claim provisioned under seccomp profile type $seccomp: $ip:$path"

# nfs_write TOKEN URL: a new file (nfs-cp creates exclusively) holding TOKEN.
nfs_write() { printf '%s\n' "$1" >"$work/token" && nfs-cp "$work/token" "$2"; }
token=before-restart-$(date +%s%N)
nfs_write "$token" "$url" || fail "nfs-cp to $url failed"
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
# The new server is in its NFSv4 grace period (clients reclaim their state;
# libnfs does not, so the grace runs its full --grace-period): opens are
# refused with NFS4ERR_GRACE until it ends, as a kernel client would see.
t_grace=$(now)
deadline=$((SECONDS + 200))
until got=$(nfs-cat "$url" 2>&1); do
  case $got in
    *NFS4ERR_GRACE*) ;;
    *) fail "reading after the server's restart failed: $got" ;;
  esac
  [ $SECONDS -lt $deadline ] || fail "still in the NFSv4 grace period 200 s after the restart"
  sleep 2
done
[ "$got" = "$token" ] || fail "after the server's restart the data written before it is not read back: '$got'"
echo "nfs: opens refused with NFS4ERR_GRACE for $(since "$t_grace") s after Ready (the grace period), then served"
token=after-restart-$(date +%s%N)
url2=${url/\/token?//after-restart?}
nfs_write "$token" "$url2" || fail "writing after the server's restart failed"
[ "$(nfs-cat "$url2")" = "$token" ] || fail "nfs-cat did not read back the write made after the restart"
echo "nfs: data from before the restart read back, writes resumed"

export_pv=$(kubectl -n nfs-provisioner get pvc export-nfs-provisioner-0 -o jsonpath='{.spec.volumeName}')
export_dir=$(kubectl get pv "$export_pv" -o jsonpath='{.spec.hostPath.path}')
[ -d "$export_dir/${path#/export/}" ] || fail "the export directory $export_dir/${path#/export/} is not on the server's disk"
kubectl delete pvc nfs-data >/dev/null
wait_gone pv "$pv"
[ ! -e "$export_dir/${path#/export/}" ] || fail "reclaimPolicy Delete: $export_dir/${path#/export/} still exists"
echo "nfs: Delete removed PV $pv and its export directory"
kubectl delete -f deploy/nfs --wait=true >/dev/null
