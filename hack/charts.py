#!/usr/bin/env python3
"""Generates the Helm chart of each provisioner from its deploy/<x> manifests.

deploy/<x>/ stays the primary install (`kubectl apply -f deploy/<x>`); the
chart in deploy/<x>/chart/ is made from it by this script, never by hand,
so the two cannot drift: hack/verify.sh regenerates the charts and fails on
any difference, and renders each chart with its default values and compares
it, object by object, with `kubectl kustomize deploy/<x>`.

The manifests are copied as templates line for line (comments kept), with
the parts operators set replaced by values: the image, the provisioner
name, node selector and tolerations, resources, the StorageClass (name,
reclaim policy, parameters) and, for local-volume, the configuration. A
replaced block's text, comments included, becomes its default in
values.yaml.

Namespaces follow Helm's convention: every namespaced object goes into the
release namespace (`helm install -n X`), the chart never makes its
namespace (`--create-namespace` does, or the operator), and there is no
namespace value. Three templates exist only in the chart:
  - pod-security.yaml refuses an install, before anything is created, into
    a namespace whose PodSecurity level would refuse the provisioner's pods,
    naming the label to set (docs/pod-security.md);
  - _helpers.tpl finds where an upgraded release's objects already are:
    chart 0.1.0 put them into its `namespace` value, often not the release
    namespace, and moving them would start an nfs server on an empty disk
    behind a new address; they stay where they are;
  - legacy-namespace.yaml keeps a namespace that chart 0.1.0 made itself
    (and would delete on upgrade or uninstall, with every claim in it).
NOTES.txt lists what `helm uninstall` leaves behind.

Usage: hack/charts.py generate [OUT_ROOT]   (default deploy: writes OUT_ROOT/<x>/chart/)
       hack/charts.py names                    (the provisioners with a chart)
       hack/charts.py namespace NAME           (its namespace)
       hack/charts.py compare A.yaml B.yaml [--ignore-kind KIND]
                                               (same objects, whatever the order)
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
        "privileged_because": "hostPath volumes (the volume roots on each node)",
        "leftovers": "its PVs, and each volume's directory on its node",
    },
    "local-volume": {
        "namespace": "local-volume-provisioner",
        "workload": "03-daemonset.yaml",
        "class": "04-storageclass.yaml",
        "provisioner": None,
        "extra": [("02-configmap.yaml", "data", "config")],
        "description": "Static local-volume provisioner: local PVs for the disks and directories each node has",
        "privileged_because": "hostPath volumes (the discovery directories and the provisioner's state on each node)",
        "leftovers": "its PVs, and the data on each disk they stand for",
    },
    "nfs": {
        "namespace": "nfs-provisioner",
        "workload": "03-statefulset.yaml",
        "class": "04-storageclass.yaml",
        "provisioner": "external-storage.io/nfs",
        "extra": [],
        "description": "NFS server in a pod: each claim an exported directory with quota and GID",
        "privileged_because": "the DAC_READ_SEARCH capability (Ganesha opens files by handle) and a hostPath volume (the kubelet's seccomp directory)",
        "leftovers": "its PVs, and the server's disk: the claim export-nfs-provisioner-0, which holds every volume's data",
    },
    "flex": {
        "namespace": "flex-provisioner",
        "workload": "03-deployment.yaml",
        "class": "04-storageclass.yaml",
        "provisioner": "external-storage.io/flex",
        "extra": [],
        "description": "Provisions and deletes volumes through a FlexVolume-style driver executable",
        "privileged_because": "a hostPath volume (the example driver's volumes on the node)",
        "leftovers": "its PVs, and the volumes the driver made",
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


def cluster_role_binding_of(deploy, account):
    """The ClusterRoleBinding that binds the ServiceAccount `account`."""
    import yaml

    for path in sorted(deploy.glob("*.yaml")):
        for d in yaml.safe_load_all(path.read_text()):
            if d and d.get("kind") == "ClusterRoleBinding":
                if any(x.get("kind") == "ServiceAccount" and x.get("name") == account for x in d.get("subjects", [])):
                    return d["metadata"]["name"]
    raise SystemExit(f"charts.py: no ClusterRoleBinding in {deploy} binds ServiceAccount {account}")


def service_account_of(deploy, spec):
    """The ServiceAccount the provisioner's workload runs as."""
    text = (deploy / spec["workload"]).read_text()
    return re.search(r"^\s*serviceAccountName: (\S+)$", text, re.M).group(1)


HELPERS = """{{/*
The namespace of this release's objects: the release namespace, except for
a release installed with a chart that had a `namespace` value (up to
hack/previous-release), which may have put them into another one. Found
with one read: the ClusterRoleBinding BINDING, when it carries this
release's Helm annotations, names the namespace of the ServiceAccount
ACCOUNT it binds (not the workload, which an upgrade step may have
deleted: nfs/README.md, "Upgrading"). They stay where they are: moving
them would delete the old objects, and for nfs start a new server on an
empty disk behind a new Service address. `helm template` (no cluster, as
Argo CD and helmfile render) renders into the release namespace: README.md,
"Helm charts".
*/}}
{{- define "provisioner.namespace" -}}
{{- $found := "" -}}
{{- $binding := lookup "rbac.authorization.k8s.io/v1" "ClusterRoleBinding" "" "BINDING" | default dict -}}
{{- $a := dig "metadata" "annotations" dict $binding -}}
{{- if and (eq (get $a "meta.helm.sh/release-name") $.Release.Name) (eq (get $a "meta.helm.sh/release-namespace") $.Release.Namespace) -}}
{{- range (get $binding "subjects") | default list -}}
{{- if and (eq (get . "kind") "ServiceAccount") (eq (get . "name") "ACCOUNT") -}}
{{- $found = get . "namespace" -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- $found | default $.Release.Namespace -}}
{{- end -}}
"""

POD_SECURITY = """{{- /*
Refuses, before anything is created, an install whose pods PodSecurity
admission would refuse (the workload would then sit at FailedCreate).
NAME needs level privileged: WHY. Checked against the namespace's
pod-security.kubernetes.io/enforce label: another level is refused on
install and upgrade; no label (or no namespace yet: the one `helm install
--create-namespace` makes has no label) is refused on install, because
the cluster's default level then decides and hardened clusters set it to
baseline. `helm template` and client dry runs have no cluster to ask and
check nothing. See docs/pod-security.md.
*/ -}}
{{- /* Nil-safe: `helm upgrade --reuse-values` from a chart without it. */ -}}
{{- $check := ne (toString (get (.Values.podSecurity | default dict) "checkNamespace")) "false" }}
{{- if and $check (lookup "v1" "Namespace" "" "kube-system") }}
{{- $name := include "provisioner.namespace" . }}
{{- $ns := lookup "v1" "Namespace" "" $name }}
{{- $level := "" }}
{{- if $ns }}{{ $level = dig "metadata" "labels" "pod-security.kubernetes.io/enforce" "" $ns }}{{ end }}
{{- $need := "NAME needs PodSecurity level privileged, for WHY." }}
{{- $fix := printf "kubectl label namespace %s --overwrite pod-security.kubernetes.io/enforce=privileged pod-security.kubernetes.io/warn=privileged" $name }}
{{- if and $level (ne $level "privileged") }}
{{- fail (printf "%s Namespace %s enforces level %q, which would refuse its pods. Label it: %s" $need $name $level $fix) }}
{{- else if and (not $level) .Release.IsInstall }}
{{- if $ns }}
{{- fail (printf "%s Namespace %s has no pod-security.kubernetes.io/enforce label, so the cluster's default level decides, and on hardened clusters (default baseline) its pods would be refused. Label it: %s (or, if this cluster admits privileged pods in unlabelled namespaces, install with --set podSecurity.checkNamespace=false)." $need $name $fix) }}
{{- else }}
{{- fail (printf "%s Namespace %s does not exist yet, and the one helm --create-namespace makes has no pod-security.kubernetes.io/enforce label, so on hardened clusters (default baseline) its pods would be refused. Make it first: kubectl create namespace %s && %s (or, if this cluster admits privileged pods in unlabelled namespaces, install with --set podSecurity.checkNamespace=false)." $need $name $name $fix) }}
{{- end }}
{{- end }}
{{- end }}
"""

LEGACY_NAMESPACE = """{{- /*
A namespace that chart 0.1.0 made itself (createNamespace: true) belongs to
the release: dropped from the chart, it would be deleted on upgrade with
every object and claim in it. It is kept as it is, and marked so that
`helm uninstall` leaves it too.
*/ -}}
{{- range (lookup "v1" "Namespace" "" "").items | default list }}
{{- $a := .metadata.annotations | default dict }}
{{- if and (eq (get $a "meta.helm.sh/release-name") $.Release.Name) (eq (get $a "meta.helm.sh/release-namespace") $.Release.Namespace) }}
{{- $labels := .metadata.labels | default dict }}
{{- if eq (get $labels "pod-security.kubernetes.io/enforce") "privileged" }}
{{- /* As deploy/ labels it now: no warnings at a stricter cluster default. */}}
{{- $labels = merge $labels (dict "pod-security.kubernetes.io/warn" "privileged" "pod-security.kubernetes.io/audit" "privileged") }}
{{- end }}
---
apiVersion: v1
kind: Namespace
metadata:
  name: {{ .metadata.name }}
  labels:
    {{- toYaml $labels | nindent 4 }}
  annotations:
    helm.sh/resource-policy: keep
{{- end }}
{{- end }}
"""

NOTES = """NAME is installed: its objects are in namespace {{ include "provisioner.namespace" . }}.

`helm uninstall {{ .Release.Name }} -n {{ .Release.Namespace }}` removes the provisioner, its RBAC
and its StorageClass. It never deletes volumes; it leaves:
  - LEFTOVERS;
  - the namespace (made by you or by --create-namespace).
Delete a claim while the provisioner runs to delete its volume. A claim
deleted while it is uninstalled leaves a Released PV: a Delete PV is then
deleted, with its data, when the provisioner is installed again.
"""


def write_chart_only_templates(name, spec, chart):
    """The templates that exist only in the chart (see the module doc)."""
    account = service_account_of(ROOT / "deploy" / name, spec)
    binding = cluster_role_binding_of(ROOT / "deploy" / name, account)
    header = "{{- /* Generated by hack/charts.py (chart-only template): edit it there. */ -}}\n"
    fill = lambda t: (
        t.replace("ACCOUNT", account)
        .replace("BINDING", binding)
        .replace("NAME", f"{name}-provisioner")
        .replace("WHY", spec["privileged_because"])
        .replace("LEFTOVERS", spec["leftovers"])
    )
    (chart / "templates" / "_helpers.tpl").write_text(header + fill(HELPERS))
    (chart / "templates" / "pod-security.yaml").write_text(header + fill(POD_SECURITY))
    (chart / "templates" / "legacy-namespace.yaml").write_text(header + fill(LEGACY_NAMESPACE))
    (chart / "templates" / "NOTES.txt").write_text(fill(NOTES))


def generate(name, spec, out):
    deploy = ROOT / "deploy" / name
    chart = out / name / "chart"
    (chart / "templates").mkdir(parents=True, exist_ok=True)
    crate = (ROOT / name / "Cargo.toml").read_text()
    version = VERSION_RE.search(crate).group(1)
    ns = spec["namespace"]
    values = Values()
    files = sorted(p.name for p in deploy.glob("*.yaml") if not p.name.startswith("00-namespace"))
    for old in (chart / "templates").glob("*"):
        old.unlink()
    for f in files:
        lines = (deploy / f).read_text().split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        out_lines = []
        for s in lines:
            # Literal `{{` (pathPattern, comments) must reach the output as is.
            s = s.replace("{{", ESCAPED)
            s = re.sub(
                r"^(\s*)namespace: " + re.escape(ns) + r"$", r'\1namespace: {{ include "provisioner.namespace" . }}', s
            )
            out_lines.append(s)
        lines = out_lines
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
            body = replace_block(lines, "nodeSelector", ".Values.nodeSelector")
            values.add(
                "Nodes the pods may run on (labels). A map you set is merged into this\none; to drop kubernetes.io/os, set it to null. `helm upgrade --reuse-values`\nfrom an older chart keeps that chart's values: use --reset-then-reuse-values.",
                "nodeSelector",
                body,
            )
            try:
                body = replace_block(lines, "tolerations", ".Values.tolerations")
                values.add(
                    "Taints the pods tolerate (a list replaces the default whole: name\nonly the taints your nodes have to narrow it).",
                    "tolerations",
                    body,
                )
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
    values.add(
        "Refuse to install into a namespace whose PodSecurity level would refuse\n"
        "the provisioner's pods (or that has no level, on install: the cluster's\n"
        "default decides, and hardened clusters default to baseline). false: your\n"
        "cluster admits privileged pods in this namespace without the label.",
        "podSecurity.checkNamespace",
        "true",
    )
    write_chart_only_templates(name, spec, chart)
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
        f"# deploy/{name}/: the defaults render what `kubectl apply -f deploy/{name}`\n"
        f"# installs, in the release namespace (`helm install -n`) instead of\n"
        f"# deploy/{name}/00-namespace.yaml: label that namespace as\n"
        f"# docs/pod-security.md says.\n\n" + values.text()
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


def compare(a, b, ignore_kinds=()):
    oa, ob = objects(a), objects(b)
    oa = {k: v for k, v in oa.items() if k[1] not in ignore_kinds}
    ob = {k: v for k, v in ob.items() if k[1] not in ignore_kinds}
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
SET = {"image.tag": "v9.9.9", "nodeSelector.disk": "ssd", "provisionerName": "example.com/renamed"}
# The release namespace of that render (helm template -n).
SET_NAMESPACE = "other-ns"


def check_set(name, rendered):
    spec = CHARTS[name]
    objs = objects(rendered)
    bad = []
    for (api, kind, ns, obj_name), d in objs.items():
        if kind == "Namespace":
            bad.append(f"the chart makes Namespace {obj_name} (helm install -n/--create-namespace does)")
            continue
        if kind not in ("ClusterRole", "ClusterRoleBinding", "StorageClass", "CSIDriver") and ns != SET_NAMESPACE:
            bad.append(f"{kind}/{obj_name} is in namespace {ns}, not the release's {SET_NAMESPACE}")
        for subject in d.get("subjects", []):
            if subject.get("kind") == "ServiceAccount" and subject.get("namespace") != SET_NAMESPACE:
                bad.append(f"{kind}/{obj_name} binds ServiceAccount {subject.get('name')} of namespace {subject.get('namespace')}")
        if kind in ("DaemonSet", "Deployment", "StatefulSet"):
            pod = d["spec"]["template"]["spec"]
            c = pod["containers"][0]
            for each in pod.get("initContainers", []) + pod["containers"]:
                if not each["image"].endswith(":" + SET["image.tag"]):
                    bad.append(f"image {each['image']} of {each['name']}")
            if pod.get("nodeSelector") != {"kubernetes.io/os": "linux", "disk": SET["nodeSelector.disk"]}:
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
    if argv[:1] == ["compare"] and len(argv) == 5 and argv[3] == "--ignore-kind":
        return compare(argv[1], argv[2], (argv[4],))
    if argv[:1] == ["check-set"] and len(argv) == 3:
        return check_set(argv[1], argv[2])
    if argv[:1] == ["set-args"]:
        print(" ".join([f"--namespace {SET_NAMESPACE}"] + [f"--set {k}={v}" for k, v in SET.items()]))
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
