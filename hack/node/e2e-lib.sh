# Helpers for hack/test-node.sh's scenarios (sourced, not run): timing,
# image import, and workload pods that write into or read from a claim as a
# non-root user and exit, their output read from the node's pod logs.
# Expects root, suffix, cluster, NODE and KUBECONFIG from hack/test-node.sh.

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }
fail() { echo "FAIL: $*" >&2; exit 1; }

# wait_for SECONDS WHAT CONDITION: evaluates the shell CONDITION every half
# second until it holds; after SECONDS fails with "WHAT".
wait_for() {
  local timeout=$1 what=$2 deadline=$((SECONDS + $1))
  shift 2
  until eval "$*"; do
    [ $SECONDS -lt $deadline ] || fail "$what (waited $timeout s)"
    sleep 0.5
  done
}

# import_image PROVISIONER: its image archive, tagged with every image name
# deploy/PROVISIONER uses.
import_image() {
  local p=$1 archive names
  archive=$root/target/images/$p-provisioner$suffix.tar
  [ -f "$archive" ] || fail "no $archive: run hack/build-images.sh${suffix:+ --debug} $p first"
  names=$(grep -ho 'image: *[^ ]*' "$root"/deploy/"$p"/*.yaml | awk '{ print $2 }' | sort -u)
  # shellcheck disable=SC2086 # one argument per image name
  "$root/hack/node.sh" import "$cluster" "$archive" $names
}

# pod_output NAMESPACE POD: what the pod's containers wrote (CRI log lines
# without their time, stream and tag fields).
pod_output() {
  local f
  for f in /var/log/pods/"$1"_"$2"_*/*/*.log; do
    [ -f "$f" ] && cut -d' ' -f4- "$f"
  done
}

# wait_phase NAMESPACE POD PHASE [TIMEOUT]: waits for the pod's phase,
# failing early (with its output) if it ends in the other final phase.
wait_phase() {
  local ns=$1 pod=$2 want=$3 deadline=$((SECONDS + ${4:-180})) phase
  while :; do
    phase=$(kubectl -n "$ns" get pod "$pod" -o jsonpath='{.status.phase}' 2>/dev/null || true)
    [ "$phase" = "$want" ] && return 0
    if [ "$phase" = Failed ] || { [ "$phase" = Succeeded ] && [ "$want" != Succeeded ]; }; then
      pod_output "$ns" "$pod" >&2
      fail "pod $ns/$pod is $phase, wanted $want"
    fi
    [ $SECONDS -lt $deadline ] || fail "pod $ns/$pod not $want after ${4:-180} s (phase: ${phase:-none})"
    sleep 0.5
  done
}

# workload_pod NAMESPACE POD CLAIM SCRIPT [FSGROUP]: a pod that runs SCRIPT
# (busybox sh) as uid/gid 1000 with the claim at /data, then exits.
workload_pod() {
  local ns=$1 pod=$2 claim=$3 script=$4 fsgroup=${5:-}
  kubectl apply -f - >/dev/null <<YAML
apiVersion: v1
kind: Pod
metadata: {name: $pod, namespace: $ns}
spec:
  restartPolicy: Never
  terminationGracePeriodSeconds: 5
  securityContext:
    runAsUser: 1000
    runAsGroup: 1000
    runAsNonRoot: true
    ${fsgroup:+fsGroup: $fsgroup}
    seccompProfile: {type: RuntimeDefault}
  containers:
    - name: app
      image: busybox:1.36
      imagePullPolicy: IfNotPresent
      command: ["sh", "-c", $(printf '%s' "$script" | python3 -c 'import json,sys; print(json.dumps(sys.stdin.read()))')]
      securityContext:
        allowPrivilegeEscalation: false
        readOnlyRootFilesystem: true
        capabilities: {drop: [ALL]}
      volumeMounts: [{name: data, mountPath: /data}]
  volumes:
    - name: data
      persistentVolumeClaim: {claimName: $claim}
YAML
}

# claim NAMESPACE NAME CLASS [SIZE] [ACCESS MODE]
claim() {
  kubectl apply -f - >/dev/null <<YAML
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: $2, namespace: $1}
spec:
  storageClassName: $3
  accessModes: [${5:-ReadWriteOnce}]
  resources: {requests: {storage: ${4:-1Gi}}}
YAML
}

# write_then_read NAMESPACE CLAIM [FSGROUP]: a pod writes a fresh token into
# the claim and exits; it is deleted, and a second pod on the same claim
# must read the token back. Prints the token.
write_then_read() {
  local ns=$1 c=$2 fsgroup=${3:-} token got
  token=written-$(date +%s%N)
  workload_pod "$ns" "$c-writer" "$c" "set -e; id; echo $token > /data/token; sync; ls -ln /data" "$fsgroup"
  wait_phase "$ns" "$c-writer" Succeeded
  kubectl -n "$ns" delete pod "$c-writer" --wait=true >/dev/null
  workload_pod "$ns" "$c-reader" "$c" "cat /data/token" "$fsgroup"
  wait_phase "$ns" "$c-reader" Succeeded
  got=$(pod_output "$ns" "$c-reader" | tail -n 1)
  [ "$got" = "$token" ] || fail "the reader of $ns/$c read '$got', the writer wrote '$token'"
  kubectl -n "$ns" delete pod "$c-reader" --wait=true >/dev/null
  echo "$token"
}

# pv_states CLASS: "<volumeMode>/<phase>" of each PV of CLASS, a line each.
pv_states() {
  kubectl get pv -o jsonpath="{range .items[?(@.spec.storageClassName==\"$1\")]}{.spec.volumeMode}/{.status.phase}{\"\\n\"}{end}"
}

# wait_gone KIND NAME [NAMESPACE] [TIMEOUT]
wait_gone() {
  local deadline=$((SECONDS + ${4:-120}))
  while kubectl ${3:+-n "$3"} get "$1" "$2" >/dev/null 2>&1; do
    [ $SECONDS -lt $deadline ] || fail "$1 $2 still there after ${4:-120} s"
    sleep 0.5
  done
}

# wait_jsonpath KIND/NAME NAMESPACE JSONPATH VALUE [TIMEOUT]
wait_jsonpath() {
  local deadline=$((SECONDS + ${5:-120})) got
  while :; do
    got=$(kubectl ${2:+-n "$2"} get "$1" -o jsonpath="$3" 2>/dev/null || true)
    [ "$got" = "$4" ] && return 0
    [ $SECONDS -lt $deadline ] || fail "$1: $3 is '$got', wanted '$4' (after ${5:-120} s)"
    sleep 0.5
  done
}
