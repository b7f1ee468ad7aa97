#!/usr/bin/env python3
"""Checks the workloads of a built deploy directory (kustomize output) for
what PodSecurity, the scheduler and `kubectl apply` judge only on a cluster,
so a new provisioner's manifests meet them before one runs them:

  - every pod template selects Linux nodes (kubernetes.io/os: linux): the
    images are Linux images, and a DaemonSet that tolerates every taint
    would otherwise get a pod on each Windows node;
  - a StatefulSet's serviceName names a headless Service of the same build
    (the governing Service gives pods their DNS names; it is not the one
    clients use);
  - a StatefulSet's volumeClaimTemplates are written as the API server
    stores them (apiVersion, kind, volumeMode, status.phase), or every
    `kubectl apply` reports the StatefulSet configured.

Usage: hack/check-workloads.py BUILT.yaml
"""

import sys

import yaml

WORKLOADS = ("DaemonSet", "Deployment", "StatefulSet", "ReplicaSet", "Job")


def problems(docs):
    services = {
        (d["metadata"].get("namespace"), d["metadata"]["name"]): d for d in docs if d.get("kind") == "Service"
    }
    for d in docs:
        kind = d.get("kind")
        if kind not in WORKLOADS:
            continue
        meta = d["metadata"]
        what = f"{kind} {meta.get('namespace')}/{meta['name']}"
        pod = d["spec"]["template"]["spec"]
        if (pod.get("nodeSelector") or {}).get("kubernetes.io/os") != "linux":
            yield f"{what}: its pods do not select kubernetes.io/os: linux (nodeSelector)"
        if kind != "StatefulSet":
            continue
        governing = services.get((meta.get("namespace"), d["spec"].get("serviceName")))
        if governing is None:
            yield f"{what}: serviceName {d['spec'].get('serviceName')!r} names no Service of this build"
        elif governing["spec"].get("clusterIP") != "None":
            yield f"{what}: its serviceName {governing['metadata']['name']} is not headless (clusterIP: None)"
        for t in d["spec"].get("volumeClaimTemplates", []):
            name = t.get("metadata", {}).get("name")
            stored = {
                "apiVersion": t.get("apiVersion") == "v1",
                "kind": t.get("kind") == "PersistentVolumeClaim",
                "spec.volumeMode": bool(t.get("spec", {}).get("volumeMode")),
                "status.phase": (t.get("status") or {}).get("phase") == "Pending",
            }
            missing = [k for k, ok in stored.items() if not ok]
            if missing:
                yield (
                    f"{what}: volumeClaimTemplate {name} is not written as stored "
                    f"(missing {', '.join(missing)}): every kubectl apply would report it configured"
                )


def main(argv):
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    with open(argv[0]) as f:
        docs = [d for d in yaml.safe_load_all(f) if d]
    bad = list(problems(docs))
    for line in bad:
        print("check-workloads:", line, file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
