#!/usr/bin/env python3
"""Generates the Helm chart of each provisioner from its deploy/<x> manifests.

deploy/<x>/ stays the primary install (`kubectl apply -f deploy/<x>`); the
chart in deploy/<x>/chart/ is made from it by this script, never by hand,
so the two cannot drift: hack/verify.sh regenerates the charts and fails on
any difference, and renders each chart with its default values and compares
it, object by object, with `kubectl kustomize deploy/<x>`.

The manifests are copied as templates line for line (comments kept), with
the parts operators set replaced by values: the namespace, the image, the
provisioner name, node selector and tolerations, resources, the
StorageClass (name, reclaim policy, parameters) and, for local-volume, the
configuration. A replaced block's text, comments included, becomes its
default in values.yaml.

Usage: hack/charts.py generate [OUT_ROOT]   (default deploy: writes OUT_ROOT/<x>/chart/)
       hack/charts.py names                    (the provisioners with a chart)
       hack/charts.py namespace NAME           (its namespace)
       hack/charts.py compare A.yaml B.yaml    (same objects, whatever the order)
       hack/charts.py check-set NAME RENDERED  (a render with hack/verify-charts.sh's
                                                non-default values carries them)
"""

import json
import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
# A literal `{{` in a template.
ESCAPED = '{{ "{{" }}'
VERSION_RE = re.compile(r'^version = "([^"]+)"', re.M)

# Per provisioner: its namespace, the workload file, the class file, the
# default provisioner name (None: the class names no provisioner of ours)
# and extra blocks that become values ((file, key, values path)).
CHARTS = {
    "hostpath": {
        "namespace": "hostpath-provisioner",
        "workload": "03-daemonset.yaml",
        "class": "04-storageclass.yaml",
        "provisioner": "external-storage.io/hostpath",
        "extra": [("02-configmap.yaml", "data", "config")],
        "description": "Dynamic hostpath provisioner: a directory per claim on the selected node",
    },
    "local-volume": {
        "namespace": "local-volume-provisioner",
        "workload": "03-daemonset.yaml",
        "class": "04-storageclass.yaml",
        "provisioner": None,
        "extra": [("02-configmap.yaml", "data", "config")],
        "description": "Static local-volume provisioner: local PVs for the disks and directories each node has",
    },
    "nfs": {
        "namespace": "nfs-provisioner",
        "workload": "03-statefulset.yaml",
        "class": "04-storageclass.yaml",
        "provisioner": "external-storage.io/nfs",
        "extra": [],
        "description": "NFS server in a pod: each claim an exported directory with quota and GID",
    },
    "flex": {
        "namespace": "flex-provisioner",
        "workload": "03-deployment.yaml",
        "class": "04-storageclass.yaml",
        "provisioner": "external-storage.io/flex",
        "extra": [],
        "description": "Provisions and deletes volumes through a FlexVolume-style driver executable",
    },
}


def block(lines, key, start=0):
    """(index of the `key:` line, end index, indent) of the first block
    `key:` with nothing after the colon, from `start`; the block is every
    following line indented deeper (blank and comment lines included)."""
    pat = re.compile(r"^(\s*)" + re.escape(key) + r":\s*$")
    for i in range(start, len(lines)):
        m = pat.match(lines[i])
        if not m:
            continue
        indent = len(m.group(1))
        j = i + 1
        while j < len(lines):
            s = lines[j]
            if s.strip() and len(s) - len(s.lstrip()) <= indent:
                break
            j += 1
        while j > i + 1 and not lines[j - 1].strip():
            j -= 1
        return i, j, indent
    raise SystemExit(f"charts.py: no block `{key}:` found")


def dedent(body):
    texts = [s for s in body if s.strip()]
    cut = min(len(s) - len(s.lstrip()) for s in texts) if texts else 0
    return [s[cut:] if s.strip() else "" for s in body]


class Values:
    """values.yaml as text, grouped by top-level key: each entry keeps its
    comment and its body (a scalar, or the lines of a block)."""

    def __init__(self):
        self.groups = {}

    def add(self, comment, key, body):
        top, _, sub = key.partition(".")
        self.groups.setdefault(top, []).append((comment, sub, body))

    def text(self):
        out = []
        for top, entries in self.groups.items():
            text = ""
            nested = any(sub for _, sub, _ in entries)
            for comment, sub, body in entries:
                depth = 1 if nested else 0
                pad = "  " * depth
                if comment:
                    lead = "" if not nested else pad
                    text += "".join(f"{lead}# {c}\n" for c in comment.split("\n"))
                key = sub if nested else top
                if isinstance(body, list):
                    text += f"{pad}{key}:\n"
                    text += "".join((pad + "  " + s if s else "") + "\n" for s in body)
                else:
                    text += f"{pad}{key}: {body}\n"
            if nested:
                text = f"{top}:\n" + text
            out.append(text)
        return "\n".join(out)


def replace_block(lines, key, expr, start=0):
    """Replaces the body of the block `key:` with a template expression;
    returns the old body, dedented."""
    i, j, indent = block(lines, key, start)
    body = [s.replace(ESCAPED, "{{") for s in dedent(lines[i + 1 : j])]
    lines[i + 1 : j] = [f"{{{{- toYaml {expr} | nindent {indent + 2} }}}}"]
    return body


def pod_field_if_set(lines, key):
    """Adds pod spec field `key` from `.Values.<key>`, only when set,
    just before `containers:`."""
    i, _, indent = block(lines, "containers")
    lines[i:i] = [
        f"{{{{- with .Values.{key} }}}}",
        f"{' ' * indent}{key}:",
        f"{{{{- toYaml . | nindent {indent + 2} }}}}",
        "{{- end }}",
    ]


def generate(name, spec, out):
    deploy = ROOT / "deploy" / name
    chart = out / name / "chart"
    (chart / "templates").mkdir(parents=True, exist_ok=True)
    crate = (ROOT / name / "Cargo.toml").read_text()
    version = VERSION_RE.search(crate).group(1)
    ns = spec["namespace"]
    values = Values()
    values.add(
        "Namespace of every namespaced object (made by the chart when\ncreateNamespace is true).",
        "namespace",
        ns,
    )
    values.add("Make the namespace (false: it exists already).", "createNamespace", "true")
    files = sorted(p.name for p in deploy.glob("*.yaml"))
    for f in files:
        lines = (deploy / f).read_text().split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        out_lines = []
        for s in lines:
            # Literal `{{` (pathPattern, comments) must reach the output as is.
            s = s.replace("{{", ESCAPED)
            s = re.sub(r"^(\s*)namespace: " + re.escape(ns) + r"$", r"\1namespace: {{ .Values.namespace }}", s)
            out_lines.append(s)
        lines = out_lines
        if f.startswith("00-namespace"):
            lines = [
                re.sub(r"^(\s*)name: " + re.escape(ns) + r"$", r"\1name: {{ .Values.namespace }}", s)
                for s in lines
            ]
            lines = ["{{- if .Values.createNamespace }}"] + lines + ["{{- end }}"]
        if f == spec["workload"]:
            # Every container of the workload (an init container included)
            # runs the provisioner's image: all of them follow the value.
            first = True
            for k, s in enumerate(lines):
                m = re.match(r"^(\s*)image: (\S+):(\S+)$", s)
                if m:
                    if first:
                        values.add("The provisioner's image.", "image.repository", m.group(2))
                        values.add("", "image.tag", m.group(3))
                        first = False
                    lines[k] = f'{m.group(1)}image: "{{{{ .Values.image.repository }}}}:{{{{ .Values.image.tag }}}}"'
            first = True
            for k, s in enumerate(lines):
                m = re.match(r"^(\s*)imagePullPolicy: (\S+)$", s)
                if m:
                    if first:
                        values.add("", "image.pullPolicy", m.group(2))
                        first = False
                    lines[k] = f"{m.group(1)}imagePullPolicy: {{{{ .Values.image.pullPolicy }}}}"
            if spec["provisioner"]:
                i, _, indent = block(lines, "env")
                pad = " " * (indent + 2)
                default = spec["provisioner"]
                lines[i + 1 : i + 1] = [
                    f'{{{{- if ne .Values.provisionerName "{default}" }}}}',
                    f"{pad}- name: PROVISIONER_NAME",
                    f"{pad}  value: {{{{ .Values.provisionerName | quote }}}}",
                    "{{- end }}",
                ]
            pod_field_if_set(lines, "nodeSelector")
            values.add("Nodes the pods may run on (labels).", "nodeSelector", "{}")
            try:
                body = replace_block(lines, "tolerations", ".Values.tolerations")
                values.add("Taints the pods tolerate.", "tolerations", body)
            except SystemExit:
                pod_field_if_set(lines, "tolerations")
                values.add("Taints the pods tolerate.", "tolerations", "[]")
            i, _, _ = block(lines, "containers")
            body = replace_block(lines, "resources", ".Values.resources", i)
            values.add("The provisioner container's requests and limits.", "resources", body)
        if f == spec["class"]:
            values.add(
                "The StorageClass the chart makes (create: false to make your own).",
                "storageClass.create",
                "true",
            )
            for k, s in enumerate(lines):
                m = re.match(r"^  name: (\S+)$", s)
                if m:
                    values.add("", "storageClass.name", m.group(1))
                    lines[k] = "  name: {{ .Values.storageClass.name }}"
                    break
            for k, s in enumerate(lines):
                m = re.match(r"^reclaimPolicy: (\S+)$", s)
                if m:
                    values.add("", "storageClass.reclaimPolicy", m.group(1))
                    lines[k] = "reclaimPolicy: {{ .Values.storageClass.reclaimPolicy }}"
            if spec["provisioner"]:
                for k, s in enumerate(lines):
                    if s == f"provisioner: {spec['provisioner']}":
                        lines[k] = "provisioner: {{ .Values.provisionerName }}"
                values.add(
                    "The provisioner name (StorageClass `provisioner`); the binary is\ntold when it differs from its default.",
                    "provisionerName",
                    spec["provisioner"],
                )
            if any(re.match(r"^parameters:\s*$", s) for s in lines):
                body = replace_block(lines, "parameters", ".Values.storageClass.parameters")
                values.add("The class's parameters (see the provisioner's README).", "storageClass.parameters", body)
            lines = ["{{- if .Values.storageClass.create }}"] + lines + ["{{- end }}"]
        for xf, key, vpath in spec["extra"]:
            if f == xf:
                body = replace_block(lines, key, ".Values." + vpath)
                values.add(f"The `{key}` of {xf} (see the provisioner's README).", vpath, body)
        header = f"# Generated by hack/charts.py from deploy/{name}/{f}: edit that file, then run hack/charts.py generate.\n"
        (chart / "templates" / f).write_text(header + "\n".join(lines) + "\n")
    (chart / "Chart.yaml").write_text(
        "# Generated by hack/charts.py from deploy/"
        + name
        + "/: edit the manifests, then run hack/charts.py generate.\n"
        + "apiVersion: v2\n"
        + f"name: {name}-provisioner\n"
        + f"description: {json.dumps(spec['description'])}\n"
        + "type: application\n"
        + f"version: {version}\n"
        + f'appVersion: "v{version}"\n'
        + "home: https://github.com/external-storage/external-storage\n"
    )
    (chart / "values.yaml").write_text(
        f"# Values of the {name}-provisioner chart, generated by hack/charts.py from\n"
        f"# deploy/{name}/: the defaults render exactly what `kubectl apply -f\n"
        f"# deploy/{name}` installs.\n\n" + values.text()
    )


def objects(path):
    import yaml

    docs = [d for d in yaml.safe_load_all(pathlib.Path(path).read_text()) if d]
    out = {}
    for d in docs:
        meta = d.get("metadata", {})
        key = (d.get("apiVersion"), d.get("kind"), meta.get("namespace"), meta.get("name"))
        if key in out:
            raise SystemExit(f"charts.py: {path} has {key} twice")
        out[key] = d
    return out


def compare(a, b):
    oa, ob = objects(a), objects(b)
    bad = []
    for k in sorted(set(oa) | set(ob), key=str):
        if k not in oa or k not in ob:
            bad.append(f"{k}: only in {a if k in oa else b}")
        elif oa[k] != ob[k]:
            bad.append(f"{k}: differs")
    for line in bad:
        print("charts.py compare:", line, file=sys.stderr)
    return 1 if bad else 0


# The values hack/verify-charts.sh sets for the non-default render.
SET = {"namespace": "other-ns", "image.tag": "v9.9.9", "nodeSelector.disk": "ssd", "provisionerName": "example.com/renamed"}


def check_set(name, rendered):
    spec = CHARTS[name]
    objs = objects(rendered)
    bad = []
    for (api, kind, ns, obj_name), d in objs.items():
        if kind in ("Namespace",):
            if obj_name != SET["namespace"]:
                bad.append(f"the Namespace is {obj_name}")
            continue
        if kind not in ("ClusterRole", "ClusterRoleBinding", "StorageClass", "CSIDriver") and ns != SET["namespace"]:
            bad.append(f"{kind}/{obj_name} is in namespace {ns}")
        if kind in ("DaemonSet", "Deployment", "StatefulSet"):
            pod = d["spec"]["template"]["spec"]
            c = pod["containers"][0]
            for each in pod.get("initContainers", []) + pod["containers"]:
                if not each["image"].endswith(":" + SET["image.tag"]):
                    bad.append(f"image {each['image']} of {each['name']}")
            if pod.get("nodeSelector") != {"disk": SET["nodeSelector.disk"]}:
                bad.append(f"nodeSelector {pod.get('nodeSelector')}")
            env = {e["name"]: e.get("value") for e in c.get("env", [])}
            if spec["provisioner"] and env.get("PROVISIONER_NAME") != SET["provisionerName"]:
                bad.append(f"PROVISIONER_NAME {env.get('PROVISIONER_NAME')}")
        if kind == "StorageClass" and spec["provisioner"] and d["provisioner"] != SET["provisionerName"]:
            bad.append(f"class provisioner {d['provisioner']}")
    for line in bad:
        print(f"charts.py check-set {name}:", line, file=sys.stderr)
    return 1 if bad else 0


def main(argv):
    if argv[:1] == ["names"]:
        print(" ".join(CHARTS))
        return 0
    if argv[:1] == ["namespace"] and len(argv) == 2:
        print(CHARTS[argv[1]]["namespace"])
        return 0
    if argv[:1] == ["compare"] and len(argv) == 3:
        return compare(argv[1], argv[2])
    if argv[:1] == ["check-set"] and len(argv) == 3:
        return check_set(argv[1], argv[2])
    if argv[:1] == ["set-args"]:
        print(" ".join(f"--set {k}={v}" for k, v in SET.items()))
        return 0
    if len(argv) < 1 or argv[0] != "generate":
        print(__doc__, file=sys.stderr)
        return 2
    out = pathlib.Path(argv[1]) if len(argv) > 1 else ROOT / "deploy"
    for name, spec in CHARTS.items():
        generate(name, spec, out)
    print(f"charts: {', '.join(CHARTS)} generated under {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
