//! The RBAC check of the end-to-end tests: every API call a provisioner
//! binary made must be allowed by the Roles and ClusterRoles of its
//! `deploy/<x>/` manifests.
//!
//! kube-testserver authorizes nothing, so without this a missing verb passes
//! every local test and fails only on a real cluster (403 at the first
//! delete, say). The binary runs with [`TestServer::kubeconfig_as`] and its
//! calls, as recorded by the server, are compared with the rules here.
//!
//! The check is the union of all rules in the manifest (a namespaced Role's
//! rules count everywhere: the tests use one namespace); `resourceNames`
//! restrictions are not modelled, so a rule with them is read as allowing
//! its verbs on every object of the resource.

use std::path::Path;

use kube_testserver::access::Access;
use kube_testserver::TestServer;
use serde::Deserialize;

#[derive(Deserialize)]
struct Doc {
    kind: Option<String>,
    #[serde(default)]
    rules: Vec<Rule>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Rule {
    #[serde(default)]
    api_groups: Vec<String>,
    #[serde(default)]
    resources: Vec<String>,
    #[serde(default)]
    verbs: Vec<String>,
}

impl Rule {
    fn allows(&self, a: &Access) -> bool {
        let any = |list: &[String], want: &str| list.iter().any(|x| x == "*" || x == want);
        any(&self.api_groups, &a.group)
            && any(&self.resources, &a.resource)
            && any(&self.verbs, &a.verb)
    }
}

/// The calls in `accesses` that no Role or ClusterRole rule in the
/// multi-document YAML `manifest` allows, as `verb group/resource` lines.
pub fn denied(accesses: &[Access], manifest: &str) -> Result<Vec<String>, serde_yaml::Error> {
    let mut rules = Vec::new();
    for doc in serde_yaml::Deserializer::from_str(manifest) {
        let value = serde_yaml::Value::deserialize(doc)?;
        if value.is_null() {
            continue;
        }
        let doc: Doc = serde_yaml::from_value(value)?;
        if matches!(doc.kind.as_deref(), Some("Role" | "ClusterRole")) {
            rules.extend(doc.rules);
        }
    }
    Ok(accesses
        .iter()
        .filter(|a| !rules.iter().any(|r| r.allows(a)))
        .map(|a| {
            let group = if a.group.is_empty() { "core" } else { &a.group };
            format!("{} {group}/{}", a.verb, a.resource)
        })
        .collect())
}

/// Panics unless `user` made API calls on `ts` and the RBAC rules in
/// `manifests` (a YAML file, or a directory whose `*.yaml` files are read,
/// e.g. `deploy/hostpath`) allow every one of them; the message lists the
/// missing permissions.
pub fn assert_rbac_allows(ts: &TestServer, user: &str, manifests: &Path) {
    let accesses = ts.accesses_by(user);
    assert!(
        !accesses.is_empty(),
        "no API calls by user {user}: was the binary started with TestServer::kubeconfig_as({user:?})?"
    );
    let text = read_manifests(manifests)
        .unwrap_or_else(|e| panic!("reading {}: {e}", manifests.display()));
    let missing =
        denied(&accesses, &text).unwrap_or_else(|e| panic!("parsing {}: {e}", manifests.display()));
    assert!(
        missing.is_empty(),
        "{} does not allow these calls the binary made (it would get 403 on a real cluster):\n  {}",
        manifests.display(),
        missing.join("\n  ")
    );
}

/// The text of `path`, or of every `*.yaml` file directly in it (sorted),
/// as one multi-document YAML.
fn read_manifests(path: &Path) -> std::io::Result<String> {
    if !path.is_dir() {
        return std::fs::read_to_string(path);
    }
    let mut files: Vec<_> = std::fs::read_dir(path)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    files.retain(|f| f.extension().is_some_and(|x| x == "yaml"));
    files.sort();
    let mut text = String::new();
    for f in files {
        text.push_str("\n---\n");
        text.push_str(&std::fs::read_to_string(f)?);
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn access(verb: &str, group: &str, resource: &str) -> Access {
        Access {
            user: "p".into(),
            verb: verb.into(),
            group: group.into(),
            resource: resource.into(),
        }
    }

    const MANIFEST: &str = r#"
apiVersion: v1
kind: ServiceAccount
metadata: {name: p}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: p}
rules:
  - apiGroups: [""]
    resources: ["persistentvolumes"]
    verbs: ["get", "list", "watch", "create", "delete"]
  - apiGroups: ["events.k8s.io"]
    resources: ["*"]
    verbs: ["create"]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: p, namespace: p}
rules:
  - apiGroups: ["coordination.k8s.io"]
    resources: ["leases"]
    verbs: ["*"]
"#;

    #[test]
    fn allowed_calls_pass_and_missing_ones_are_named() {
        let ok = [
            access("get", "", "persistentvolumes"),
            access("create", "events.k8s.io", "events"),
            access("update", "coordination.k8s.io", "leases"),
        ];
        assert_eq!(denied(&ok, MANIFEST).unwrap(), Vec::<String>::new());
        let bad = [
            access("patch", "", "persistentvolumes"),
            access("get", "", "persistentvolumeclaims"),
            access("patch", "", "persistentvolumes/status"),
            access("patch", "events.k8s.io", "events"),
        ];
        assert_eq!(
            denied(&bad, MANIFEST).unwrap(),
            [
                "patch core/persistentvolumes",
                "get core/persistentvolumeclaims",
                "patch core/persistentvolumes/status",
                "patch events.k8s.io/events",
            ]
        );
    }

    #[test]
    fn a_manifest_that_is_not_yaml_is_an_error() {
        assert!(denied(&[], "rules: [").is_err());
    }
}
