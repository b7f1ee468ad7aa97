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
wait_for 120 "two Available PVs of class fast-disks expected" '[ "$(pv_states fast-disks | grep -c /Available)" = 2 ]'
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

# Block: the README's variant of the shipped DaemonSet and ConfigMap.
truncate -s 64M "$work/disk-c.img"
block_loop=$(losetup --find --show "$work/disk-c.img")
loops+=("$block_loop")
[ -e /mnt/block-disks ] || made_dirs+=(/mnt/block-disks)
mkdir -p /mnt/block-disks
ln -sfn "$block_loop" /mnt/block-disks/disk-c
config=$(kubectl -n local-volume-provisioner get configmap local-volume-provisioner-config -o jsonpath='{.data.storageClassMap}')
printf '%s\nblock-disks:\n  hostDir: /mnt/block-disks\n  mountDir: /mnt/block-disks\n  volumeMode: Block\n' "$config" >"$work/class-map"
kubectl -n local-volume-provisioner create configmap local-volume-provisioner-config \
  --from-file=storageClassMap="$work/class-map" \
  --from-literal=nodeLabelsForPV="$(kubectl -n local-volume-provisioner get configmap local-volume-provisioner-config -o jsonpath='{.data.nodeLabelsForPV}')" \
  --dry-run=client -o yaml | kubectl apply -f - >/dev/null
kubectl apply -f - >/dev/null <<'YAML'
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: {name: block-disks}
provisioner: kubernetes.io/no-provisioner
volumeBindingMode: WaitForFirstConsumer
reclaimPolicy: Delete
YAML
kubectl -n local-volume-provisioner patch ds local-volume-provisioner --type json -p '[
  {"op": "replace", "path": "/spec/template/spec/containers/0/securityContext",
   "value": {"runAsUser": 0, "runAsNonRoot": false, "privileged": true, "readOnlyRootFilesystem": true}},
  {"op": "add", "path": "/spec/template/spec/containers/0/volumeMounts/-", "value": {"name": "dev", "mountPath": "/dev"}},
  {"op": "add", "path": "/spec/template/spec/containers/0/volumeMounts/-",
   "value": {"name": "block-disks", "mountPath": "/mnt/block-disks", "mountPropagation": "HostToContainer"}},
  {"op": "add", "path": "/spec/template/spec/volumes/-", "value": {"name": "dev", "hostPath": {"path": "/dev"}}},
  {"op": "add", "path": "/spec/template/spec/volumes/-",
   "value": {"name": "block-disks", "hostPath": {"path": "/mnt/block-disks", "type": "DirectoryOrCreate"}}}]' >/dev/null
kubectl -n local-volume-provisioner rollout status ds/local-volume-provisioner --timeout=180s
wait_for 120 "no Available Block PV of class block-disks" '[ "$(pv_states block-disks)" = Block/Available ]'
echo "local-volume: $block_loop (linked as /mnt/block-disks/disk-c) offered as a raw Block PV"

# block_pod NAME SCRIPT: a pod with the claim as the raw device /dev/xvda.
# Root without capabilities: the device node is root's (mode 0660).
block_pod() {
  kubectl apply -f - >/dev/null <<YAML
apiVersion: v1
kind: Pod
metadata: {name: $1, namespace: default}
spec:
  restartPolicy: Never
  terminationGracePeriodSeconds: 5
  containers:
    - name: app
      image: busybox:1.36
      command: ["sh", "-c", "$2"]
      securityContext: {allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: {drop: [ALL]}}
      volumeDevices: [{name: data, devicePath: /dev/xvda}]
  volumes:
    - name: data
      persistentVolumeClaim: {claimName: lv-block}
YAML
}
kubectl apply -f - >/dev/null <<'YAML'
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: lv-block, namespace: default}
spec:
  storageClassName: block-disks
  volumeMode: Block
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 32Mi}}
YAML
token=block-$(date +%s%N)
block_pod lv-block-writer "printf $token | dd of=/dev/xvda bs=512 count=1 conv=sync && sync"
wait_phase default lv-block-writer Succeeded
kubectl delete pod lv-block-writer --wait=true >/dev/null
block_pod lv-block-reader "dd if=/dev/xvda bs=512 count=1 2>/dev/null | tr -d '\\\\000'; echo"
wait_phase default lv-block-reader Succeeded
got=$(pod_output default lv-block-reader | tail -n 1)
[ "$got" = "$token" ] || fail "the block reader read '$got', the writer wrote '$token'"
pv=$(kubectl get pvc lv-block -o jsonpath='{.spec.volumeName}')
echo "local-volume: raw block $pv written through volumeDevices by one pod, read back by another"
kubectl delete pod lv-block-reader --wait=true >/dev/null
kubectl delete pvc lv-block >/dev/null
wait_jsonpath "pv/$pv" "" '{.status.phase}' Available 180
[ -z "$(dd if="$block_loop" bs=512 count=1 2>/dev/null | tr -d '\000')" ] || fail "the released block device $block_loop was not wiped"
echo "local-volume: the released block device was wiped and offered again"
kubectl delete -f deploy/local-volume --wait=true >/dev/null
