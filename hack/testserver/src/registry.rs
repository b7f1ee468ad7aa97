//! The table of resource kinds the server knows about.
//!
//! Everything else (routing, discovery, OpenAPI, validation) is driven from
//! this one table so that adding a kind is a one-line change.

/// How `metadata.name` is validated for a kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameRule {
    /// RFC 1123 subdomain (most kinds).
    Subdomain,
    /// RFC 1123 label (namespaces).
    Label,
    /// RFC 1035 label (services).
    Label1035,
    /// Any path segment (RBAC kinds allow `system:foo`).
    PathSegment,
}

/// One served resource.
#[derive(Debug, Clone, Copy)]
pub struct ResourceInfo {
    /// API group, "" for core.
    pub group: &'static str,
    /// API version.
    pub version: &'static str,
    /// Kind, e.g. `PersistentVolumeClaim`.
    pub kind: &'static str,
    /// Plural resource name, e.g. `persistentvolumeclaims`.
    pub plural: &'static str,
    /// Singular resource name.
    pub singular: &'static str,
    /// Whether objects live in namespaces.
    pub namespaced: bool,
    /// Whether a `/status` subresource exists (main PUT ignores status).
    pub status: bool,
    /// Whether status is cleared on create (like the real registry strategies).
    pub reset_status_on_create: bool,
    /// kubectl short names.
    pub short_names: &'static [&'static str],
    /// Name validation rule.
    pub name_rule: NameRule,
}

impl ResourceInfo {
    /// `apiVersion` string (`v1` or `group/version`).
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// Resource as printed in error messages: `pods` or `deployments.apps`.
    pub fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.plural.to_string()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    /// Kind as printed in Invalid messages: `Pod` or `Deployment.apps`.
    pub fn qualified_kind(&self) -> String {
        if self.group.is_empty() {
            self.kind.to_string()
        } else {
            format!("{}.{}", self.kind, self.group)
        }
    }
}

macro_rules! res {
    ($g:expr, $v:expr, $k:expr, $p:expr, $s:expr, $ns:expr, $st:expr, $reset:expr, $short:expr, $rule:expr) => {
        ResourceInfo {
            group: $g,
            version: $v,
            kind: $k,
            plural: $p,
            singular: $s,
            namespaced: $ns,
            status: $st,
            reset_status_on_create: $reset,
            short_names: $short,
            name_rule: $rule,
        }
    };
}

use NameRule::*;

/// All served resources. Index into this table is the resource id used by the store.
pub static RESOURCES: &[ResourceInfo] = &[
    res!(
        "",
        "v1",
        "Namespace",
        "namespaces",
        "namespace",
        false,
        true,
        false,
        &["ns"],
        Label
    ),
    res!(
        "",
        "v1",
        "Node",
        "nodes",
        "node",
        false,
        true,
        false,
        &["no"],
        Subdomain
    ),
    res!(
        "",
        "v1",
        "Pod",
        "pods",
        "pod",
        true,
        true,
        true,
        &["po"],
        Subdomain
    ),
    res!(
        "",
        "v1",
        "PersistentVolume",
        "persistentvolumes",
        "persistentvolume",
        false,
        true,
        true,
        &["pv"],
        Subdomain
    ),
    res!(
        "",
        "v1",
        "PersistentVolumeClaim",
        "persistentvolumeclaims",
        "persistentvolumeclaim",
        true,
        true,
        true,
        &["pvc"],
        Subdomain
    ),
    res!(
        "",
        "v1",
        "Event",
        "events",
        "event",
        true,
        false,
        false,
        &["ev"],
        Subdomain
    ),
    res!(
        "",
        "v1",
        "ConfigMap",
        "configmaps",
        "configmap",
        true,
        false,
        false,
        &["cm"],
        Subdomain
    ),
    res!(
        "",
        "v1",
        "Secret",
        "secrets",
        "secret",
        true,
        false,
        false,
        &[],
        Subdomain
    ),
    res!(
        "",
        "v1",
        "Service",
        "services",
        "service",
        true,
        true,
        true,
        &["svc"],
        Label1035
    ),
    res!(
        "",
        "v1",
        "Endpoints",
        "endpoints",
        "endpoints",
        true,
        false,
        false,
        &["ep"],
        Subdomain
    ),
    res!(
        "",
        "v1",
        "ServiceAccount",
        "serviceaccounts",
        "serviceaccount",
        true,
        false,
        false,
        &["sa"],
        Subdomain
    ),
    res!(
        "storage.k8s.io",
        "v1",
        "StorageClass",
        "storageclasses",
        "storageclass",
        false,
        false,
        false,
        &["sc"],
        Subdomain
    ),
    res!(
        "coordination.k8s.io",
        "v1",
        "Lease",
        "leases",
        "lease",
        true,
        false,
        false,
        &[],
        Subdomain
    ),
    res!(
        "events.k8s.io",
        "v1",
        "Event",
        "events",
        "event",
        true,
        false,
        false,
        &["ev"],
        Subdomain
    ),
    res!(
        "apps",
        "v1",
        "DaemonSet",
        "daemonsets",
        "daemonset",
        true,
        true,
        true,
        &["ds"],
        Subdomain
    ),
    res!(
        "apps",
        "v1",
        "Deployment",
        "deployments",
        "deployment",
        true,
        true,
        true,
        &["deploy"],
        Subdomain
    ),
    res!(
        "apps",
        "v1",
        "StatefulSet",
        "statefulsets",
        "statefulset",
        true,
        true,
        true,
        &["sts"],
        Subdomain
    ),
    res!(
        "rbac.authorization.k8s.io",
        "v1",
        "Role",
        "roles",
        "role",
        true,
        false,
        false,
        &[],
        PathSegment
    ),
    res!(
        "rbac.authorization.k8s.io",
        "v1",
        "RoleBinding",
        "rolebindings",
        "rolebinding",
        true,
        false,
        false,
        &[],
        PathSegment
    ),
    res!(
        "rbac.authorization.k8s.io",
        "v1",
        "ClusterRole",
        "clusterroles",
        "clusterrole",
        false,
        false,
        false,
        &[],
        PathSegment
    ),
    res!(
        "rbac.authorization.k8s.io",
        "v1",
        "ClusterRoleBinding",
        "clusterrolebindings",
        "clusterrolebinding",
        false,
        false,
        false,
        &[],
        PathSegment
    ),
    res!(
        "networking.k8s.io",
        "v1",
        "NetworkPolicy",
        "networkpolicies",
        "networkpolicy",
        true,
        false,
        false,
        &["netpol"],
        Subdomain
    ),
    res!(
        "policy",
        "v1",
        "PodDisruptionBudget",
        "poddisruptionbudgets",
        "poddisruptionbudget",
        true,
        true,
        true,
        &["pdb"],
        Subdomain
    ),
];

/// Resource id (index into [`RESOURCES`]).
pub type ResId = usize;

/// Finds a resource by group, version and plural.
pub fn lookup(group: &str, version: &str, plural: &str) -> Option<ResId> {
    RESOURCES
        .iter()
        .position(|r| r.group == group && r.version == version && r.plural == plural)
}

/// Finds a resource id by group and plural, panicking if absent (for built-in ids).
pub fn id(group: &str, plural: &str) -> ResId {
    RESOURCES
        .iter()
        .position(|r| r.group == group && r.plural == plural)
        .expect("known resource")
}

/// Distinct (group, version) pairs in table order, core first.
pub fn group_versions() -> Vec<(&'static str, &'static str)> {
    let mut out: Vec<(&'static str, &'static str)> = Vec::new();
    for r in RESOURCES {
        if !out.contains(&(r.group, r.version)) {
            out.push((r.group, r.version));
        }
    }
    out
}

/// Validates a name according to `rule`; returns the validation message on failure.
pub fn validate_name(rule: NameRule, name: &str) -> Result<(), String> {
    fn label_ok(s: &str, first_alpha: bool) -> bool {
        let b = s.as_bytes();
        !b.is_empty()
            && b.len() <= 63
            && b.iter()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
            && (if first_alpha {
                b[0].is_ascii_lowercase()
            } else {
                b[0].is_ascii_alphanumeric()
            })
            && b[b.len() - 1].is_ascii_alphanumeric()
    }
    match rule {
        Subdomain => {
            if name.len() <= 253 && name.split('.').all(|l| label_ok(l, false)) {
                Ok(())
            } else {
                Err("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')".into())
            }
        }
        Label => {
            if label_ok(name, false) {
                Ok(())
            } else {
                Err("a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')".into())
            }
        }
        Label1035 => {
            if label_ok(name, true) {
                Ok(())
            } else {
                Err("a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')".into())
            }
        }
        PathSegment => {
            if name.is_empty()
                || name == "."
                || name == ".."
                || name.contains('/')
                || name.contains('%')
            {
                Err("may not contain '/' or '%' and may not be '.' or '..'".into())
            } else {
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(validate_name(Subdomain, "a.b-c").is_ok());
        assert!(validate_name(Subdomain, "Foo").is_err());
        assert!(validate_name(Subdomain, "-a").is_err());
        assert!(validate_name(Label, "a.b").is_err());
        assert!(validate_name(Label1035, "1a").is_err());
        assert!(validate_name(PathSegment, "system:foo").is_ok());
        assert!(lookup("", "v1", "pods").is_some());
        assert_eq!(
            RESOURCES[id("apps", "deployments")].qualified(),
            "deployments.apps"
        );
    }
}
