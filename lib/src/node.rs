//! The node a node-local instance serves, as the scheduler sees it.
//!
//! The scheduler and the kubelet match a PV's node affinity against the
//! node's *labels* only (`CheckNodeAffinity` in component-helpers): a
//! `matchFields metadata.name` term never matches there, and on clusters
//! whose node names are FQDNs the `kubernetes.io/hostname` label differs
//! from the name. So node affinity and `allowedTopologies` are written and
//! read with the label value, which only the Node object knows.

use k8s_openapi::api::core::v1::Node;
use kube::{Api, Client};

use crate::annotations::HOSTNAME_LABEL;

/// The `kubernetes.io/hostname` label of Node `name`; the name itself when
/// the Node has no such label or does not exist (yet), with a warning: a
/// node without the label cannot be matched by any hostname affinity.
pub async fn hostname_label(client: &Client, name: &str) -> Result<String, kube::Error> {
    let api: Api<Node> = Api::all(client.clone());
    match api.get_opt(name).await? {
        Some(node) => Ok(hostname_of(&node).map(str::to_string).unwrap_or_else(|| {
            tracing::warn!(
                node = name,
                "Node has no {HOSTNAME_LABEL} label; using its name"
            );
            name.to_string()
        })),
        None => {
            tracing::warn!(
                node = name,
                "Node not found; using its name as {HOSTNAME_LABEL}"
            );
            Ok(name.to_string())
        }
    }
}

/// The node's `kubernetes.io/hostname` label, if set and not empty.
pub fn hostname_of(node: &Node) -> Option<&str> {
    node.metadata
        .labels
        .as_ref()?
        .get(HOSTNAME_LABEL)
        .map(String::as_str)
        .filter(|h| !h.is_empty())
}
