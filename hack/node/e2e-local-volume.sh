# hack/test-node.sh's local-volume scenario (sourced): two loop devices with
# ext4, mounted under the shipped discovery directory in the node's mount
# namespace, become PVs; a claim is written by one non-root pod (fsGroup: the
# filesystem's root is root's) and read back by another; after release the
# volume is cleaned and offered again, and the next claim's pod finds it empty.
disks=/mnt/fast-disks
for d in disk-a disk-b; do
  truncate -s 64M "$work/$d.img"
  mkfs.ext4 -q -F "$work/$d.img"
  loop=$(losetup --find --show "$work/$d.img")
  loops+=("$loop")
  mkdir -p "$disks/$d"
  "$root/hack/node.sh" exec "$cluster" mount "$loop" "$disks/$d"
done
kubectl apply -f deploy/local-volume >/dev/null
kubectl -n local-volume-provisioner rollout status ds/local-volume-provisioner --timeout=180s
deadline=$((SECONDS + 120))
until [ "$(kubectl get pv -o jsonpath='{range .items[?(@.spec.storageClassName=="fast-disks")]}{.status.phase}{"\n"}{end}' | grep -c Available)" = 2 ]; do
  [ $SECONDS -lt $deadline ] || fail "two Available fast-disks PVs expected within 120 s: $(kubectl get pv)"
  sleep 0.5
done
echo "local-volume: both mounted disks discovered as Available PVs"

claim default lv-first fast-disks 32Mi
write_then_read default lv-first 1000 >/dev/null
pv=$(kubectl get pvc lv-first -o jsonpath='{.spec.volumeName}')
path=$(kubectl get pv "$pv" -o jsonpath='{.spec.local.path}')
echo "local-volume: $pv ($path) written by one pod, read back by another"
kubectl delete pvc lv-first >/dev/null
# Released, cleaned, deleted and offered again under the same name.
wait_jsonpath "pv/$pv" "" '{.status.phase}' Available 180
[ -z "$(ls -A "$path" | grep -v '^lost+found$')" ] || fail "the re-offered $path is not empty: $(ls -A "$path")"
echo "local-volume: $pv cleaned and Available again"

# Both disks must serve the next two claims empty, the cleaned one included.
for c in lv-second lv-third; do
  claim default "$c" fast-disks 32Mi
  workload_pod default "$c-check" "$c" 'test -z "$(ls -A /data | grep -v "^lost+found$")" && echo empty' 1000
  wait_phase default "$c-check" Succeeded
  [ "$(pod_output default "$c-check" | tail -n 1)" = empty ] || fail "claim $c's volume is not empty"
done
echo "local-volume: the next claims' pods found their volumes empty"
kubectl delete pod lv-second-check lv-third-check --wait=true >/dev/null
kubectl delete pvc lv-second lv-third >/dev/null
kubectl delete -f deploy/local-volume --wait=true >/dev/null
