# hack/test-node.sh's flex scenario (sourced): the shipped Deployment makes
# volumes with the example driver; the kubelet mounts them by calling the
# same driver installed in the node's FlexVolume plugin directory
# (example.com~dir/dir); one non-root pod writes, another reads back; Delete
# removes the directory.
plugin=$cluster/node/plugins/example.com~dir
mkdir -p "$plugin"
install -m 0755 flex/examples/example-driver.sh "$plugin/dir"
kubectl apply -f deploy/flex >/dev/null
kubectl -n flex-provisioner rollout status deploy/flex-provisioner --timeout=180s
claim default flex-data flex-example
wait_jsonpath pvc/flex-data default '{.status.phase}' Bound
pv=$(kubectl get pvc flex-data -o jsonpath='{.spec.volumeName}')
path=$(kubectl get pv "$pv" -o jsonpath='{.spec.flexVolume.options.path}')
[ -n "$path" ] || fail "PV $pv has no flexVolume path option"
token=$(write_then_read default flex-data 1000)
[ "$(cat "$path/token")" = "$token" ] || fail "$path/token does not hold what the pod wrote"
echo "flex: the kubelet mounted $path through the node's driver; $path/token = $token"
kubectl delete pvc flex-data >/dev/null
wait_gone pv "$pv"
[ ! -e "$path" ] || fail "reclaimPolicy Delete: $path still exists"
echo "flex: Delete removed PV $pv and $path"
kubectl delete -f deploy/flex --wait=true >/dev/null
