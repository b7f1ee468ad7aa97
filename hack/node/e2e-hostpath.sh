# hack/test-node.sh's hostpath scenario (sourced): the shipped DaemonSet as a
# real pod; a claim written by one non-root pod and read back by another;
# Delete removes the directory, Retain keeps it; a `local` volume honours
# the pod's fsGroup (the kubelet gives the directory to the group); a class
# with uid/gid gives the directory to them and pods get the group.
kubectl apply -f deploy/hostpath >/dev/null
kubectl -n hostpath-provisioner rollout status ds/hostpath-provisioner --timeout=180s
base=/var/lib/hostpath-provisioner
kubectl apply -f - >/dev/null <<'YAML'
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: {name: hostpath-retain}
provisioner: external-storage.io/hostpath
volumeBindingMode: WaitForFirstConsumer
reclaimPolicy: Retain
---
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: {name: hostpath-fsgroup}
provisioner: external-storage.io/hostpath
volumeBindingMode: WaitForFirstConsumer
reclaimPolicy: Delete
parameters: {volumeType: local, mode: "0770"}
---
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: {name: hostpath-owner}
provisioner: external-storage.io/hostpath
volumeBindingMode: WaitForFirstConsumer
reclaimPolicy: Delete
parameters: {uid: "4000", gid: "3000"}
YAML

# Delete: written, read back, then gone with its PV.
claim default hp-delete hostpath
token=$(write_then_read default hp-delete)
pv=$(kubectl get pvc hp-delete -o jsonpath='{.spec.volumeName}')
dir=$base/default/hp-delete-$pv
[ "$(cat "$dir/token")" = "$token" ] || fail "$dir/token on the node does not hold what the pod wrote"
echo "hostpath: $dir/token = $token (written by one pod, read back by another)"
kubectl delete pvc hp-delete >/dev/null
wait_gone pv "$pv"
[ ! -e "$dir" ] || fail "reclaimPolicy Delete: $dir still exists after its PV was deleted"
echo "hostpath: Delete removed PV $pv and $dir"

# Retain: the claim goes, the PV is Released, the data stays.
claim default hp-retain hostpath-retain
token=$(write_then_read default hp-retain)
pv=$(kubectl get pvc hp-retain -o jsonpath='{.spec.volumeName}')
kubectl delete pvc hp-retain >/dev/null
wait_jsonpath "pv/$pv" "" '{.status.phase}' Released
dir=$(kubectl get pv "$pv" -o jsonpath='{.spec.hostPath.path}')
[ "$(cat "$dir/token")" = "$token" ] || fail "reclaimPolicy Retain: $dir/token lost"
echo "hostpath: Retain kept $dir (PV $pv Released)"
kubectl delete pv "$pv" >/dev/null
rm -rf "$dir"

# fsGroup: a mode-0770 root-owned directory, writable only through the group
# the kubelet gives it.
claim default hp-fsgroup hostpath-fsgroup
write_then_read default hp-fsgroup 2000 >/dev/null
pv=$(kubectl get pvc hp-fsgroup -o jsonpath='{.spec.volumeName}')
dir=$(kubectl get pv "$pv" -o jsonpath='{.spec.local.path}')
[ "$(stat -c %g "$dir/token")" = 2000 ] || fail "fsGroup 2000: $dir/token has group $(stat -c %g "$dir/token")"
echo "hostpath: fsGroup 2000 applied by the kubelet to a local volume ($dir/token group 2000)"
kubectl delete pvc hp-fsgroup >/dev/null
wait_gone pv "$pv"

# uid/gid: a 0770 directory of 4000:3000; a pod of uid 1000 with no fsGroup
# writes into it through group 3000, which the kubelet adds to its groups
# from the PV's pv.beta.kubernetes.io/gid.
claim default hp-owner hostpath-owner
write_then_read default hp-owner >/dev/null
pv=$(kubectl get pvc hp-owner -o jsonpath='{.spec.volumeName}')
dir=$(kubectl get pv "$pv" -o jsonpath='{.spec.hostPath.path}')
[ "$(stat -c %u:%g:%a "$dir")" = 4000:3000:770 ] || fail "uid/gid: $dir is $(stat -c %u:%g:%a "$dir"), wanted 4000:3000:770"
[ "$(stat -c %u "$dir/token")" = 1000 ] || fail "uid/gid: $dir/token was not written by uid 1000"
echo "hostpath: uid 4000, gid 3000: $dir is 4000:3000 mode 0770, and a uid-1000 pod without fsGroup wrote into it through the PV's group"
kubectl delete pvc hp-owner >/dev/null
wait_gone pv "$pv"
kubectl delete -f deploy/hostpath --wait=true >/dev/null
