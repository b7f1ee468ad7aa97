//! Who may mount by default: the cluster's Nodes.
//!
//! # Why
//!
//! The kubelet mounts a PV from its node's network namespace, so its source
//! address is one of its Node's addresses. A pod on the pod network is
//! never a legitimate client, yet with `sec=sys` (AUTH_SYS) any pod that can
//! reach port 2049 may claim any uid and gid from userspace (a libnfs client
//! needs no privilege). So an export admits the Nodes' addresses
//! (`InternalIP` and `ExternalIP` of `status.addresses`, and the gateway
//! addresses of their pod CIDRs unless `--admit-pod-cidr-gateways=false`)
//! plus what the operator adds with `--allowed-clients`, and nothing else.
//!
//! # How
//!
//! [`follow`] watches the Nodes and keeps the list of every Node's
//! addresses; after each change it hands the whole client list to
//! [`Server::set_clients`](crate::server::Server::set_clients), which
//! re-renders the export files and updates the live exports in place
//! (Ganesha's `UpdateExport`: mounts of the remaining nodes stay). The list
//! is sorted, so a Node's status update that changes no address changes
//! nothing on disk or in Ganesha. A Node whose watch is lost is kept until
//! the re-list says it is gone: a relist never drops a node by mistake.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, ListParams};
use kube::runtime::watcher::{self, watcher, Event};
use kube::runtime::WatchStreamExt;
use kube::{Client, ResourceExt};
use tokio_util::sync::CancellationToken;

use crate::ganesha::ClientList;
use crate::server::{Server, ServerError};

/// The address types a kubelet may mount from.
pub const MOUNT_ADDRESS_TYPES: [&str; 2] = ["InternalIP", "ExternalIP"];

/// The addresses `node` may mount from: its `InternalIP` and `ExternalIP`
/// entries that parse as IP addresses (a hostname entry names no address),
/// and with `gateways` the [`pod_cidr_gateways`] of its `spec.podCIDRs`.
pub fn node_addresses(node: &Node, gateways: bool) -> Vec<IpAddr> {
    let listed = node
        .status
        .as_ref()
        .and_then(|s| s.addresses.as_ref())
        .into_iter()
        .flatten()
        .filter(|a| MOUNT_ADDRESS_TYPES.contains(&a.type_.as_str()))
        .filter_map(|a| a.address.trim().parse::<IpAddr>().ok())
        // `0.0.0.0` would be Ganesha's "any client".
        .filter(|ip| !ip.is_unspecified());
    let spec = node.spec.as_ref().filter(|_| gateways);
    let cidrs = spec
        .and_then(|s| s.pod_cidrs.clone())
        .filter(|c| !c.is_empty())
        .or_else(|| spec.and_then(|s| s.pod_cidr.clone()).map(|c| vec![c]))
        .unwrap_or_default();
    listed
        .chain(cidrs.iter().flat_map(|c| pod_cidr_gateways(c)))
        .collect()
}

/// The node's own addresses on its pod network `cidr`: its first two
/// (`10.244.3.0` and `10.244.3.1` of `10.244.3.0/24`). A kubelet mounting
/// a Service address is masqueraded by kube-proxy to the address of the
/// interface the packet leaves by: the CNI bridge's gateway (`.1`, e.g.
/// `cni0`) on the server's own node, a tunnel (`.0`, e.g. `flannel.1`)
/// across an overlay. host-local IPAM never gives either to a pod (the
/// network address is skipped, the gateway reserved). Networks too small
/// to hold pods besides those two give nothing.
pub fn pod_cidr_gateways(cidr: &str) -> Vec<IpAddr> {
    let Some((addr, prefix)) = cidr.trim().split_once('/') else {
        return Vec::new();
    };
    let (Ok(addr), Ok(prefix)) = (addr.parse::<IpAddr>(), prefix.parse::<u32>()) else {
        return Vec::new();
    };
    match addr {
        IpAddr::V4(a) if prefix <= 29 => {
            let net = u32::from(a) & u32::MAX.checked_shl(32 - prefix).unwrap_or(0);
            vec![
                IpAddr::V4(net.into()),
                IpAddr::V4(net.wrapping_add(1).into()),
            ]
        }
        IpAddr::V6(a) if prefix <= 125 => {
            let net = u128::from(a) & u128::MAX.checked_shl(128 - prefix).unwrap_or(0);
            vec![
                IpAddr::V6(net.into()),
                IpAddr::V6(net.wrapping_add(1).into()),
            ]
        }
        _ => Vec::new(),
    }
}

/// Every Node's addresses by Node name, as the watch last reported them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeAddresses {
    by_node: BTreeMap<String, Vec<IpAddr>>,
    /// Whether the pod CIDRs' gateways count ([`node_addresses`]).
    gateways: bool,
}

impl NodeAddresses {
    /// No Node yet.
    pub fn new(gateways: bool) -> Self {
        NodeAddresses {
            by_node: BTreeMap::new(),
            gateways,
        }
    }

    /// The addresses of `nodes`.
    pub fn of<'a>(nodes: impl IntoIterator<Item = &'a Node>, gateways: bool) -> Self {
        let mut known = NodeAddresses::new(gateways);
        for n in nodes {
            known.apply(n);
        }
        known
    }

    /// Records `node`'s current addresses.
    pub fn apply(&mut self, node: &Node) {
        self.by_node
            .insert(node.name_any(), node_addresses(node, self.gateways));
    }

    /// Forgets a deleted Node.
    pub fn delete(&mut self, node: &Node) {
        self.by_node.remove(&node.name_any());
    }

    /// The operator's `extra` networks plus every Node's addresses.
    pub fn clients(&self, extra: &ClientList) -> ClientList {
        extra.with_hosts(self.by_node.values().flatten().copied())
    }
}

/// The client list of the Nodes there are now (one LIST), for the server's
/// first start: its exports admit the nodes from the first moment.
pub async fn initial(
    client: &Client,
    extra: &ClientList,
    gateways: bool,
) -> Result<ClientList, kube::Error> {
    let nodes = Api::<Node>::all(client.clone())
        .list(&ListParams::default())
        .await?;
    Ok(NodeAddresses::of(&nodes.items, gateways).clients(extra))
}

/// Watches the Nodes until `shutdown` and gives `server` the new client
/// list after each change (module docs).
pub async fn follow(
    client: Client,
    extra: ClientList,
    gateways: bool,
    server: Arc<Server>,
    shutdown: CancellationToken,
) {
    let mut known = NodeAddresses::new(gateways);
    let mut listing: Option<NodeAddresses> = None;
    // Set while the server has not taken the current list (not ready, or
    // an update failed): tried again every RETRY without a Node event.
    let mut unapplied = false;
    let events = watcher(Api::<Node>::all(client), watcher::Config::default()).default_backoff();
    let mut events = std::pin::pin!(events);
    loop {
        let event = tokio::select! {
            _ = shutdown.cancelled() => return,
            e = events.next() => match e {
                Some(e) => Some(e),
                None => return,
            },
            _ = tokio::time::sleep(RETRY), if unapplied => None,
        };
        match event {
            None => {}
            Some(Ok(Event::Init)) => listing = Some(NodeAddresses::new(gateways)),
            Some(Ok(Event::InitApply(n))) => {
                if let Some(l) = listing.as_mut() {
                    l.apply(&n);
                }
            }
            Some(Ok(Event::InitDone)) => {
                if let Some(l) = listing.take() {
                    known = l;
                }
            }
            Some(Ok(Event::Apply(n))) => known.apply(&n),
            Some(Ok(Event::Delete(n))) => known.delete(&n),
            Some(Err(error)) => {
                tracing::warn!(%error, "watching Nodes for the NFS client list failed; retrying");
                continue;
            }
        }
        if listing.is_some() {
            continue;
        }
        let clients = known.clients(&extra);
        unapplied = match server.set_clients(&clients).await {
            Ok(()) => false,
            Err(ServerError::NotReady) => true,
            Err(error) => {
                tracing::error!(%error, clients = %clients, "updating who may mount failed; retried in {RETRY:?}");
                true
            }
        };
    }
}

/// How soon a client list the server did not take is offered again.
const RETRY: Duration = Duration::from_secs(5);

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{NodeAddress, NodeStatus};

    fn node(name: &str, addresses: &[(&str, &str)]) -> Node {
        let mut n = Node::default();
        n.metadata.name = Some(name.into());
        n.status = Some(NodeStatus {
            addresses: Some(
                addresses
                    .iter()
                    .map(|(t, a)| NodeAddress {
                        type_: t.to_string(),
                        address: a.to_string(),
                    })
                    .collect(),
            ),
            ..Default::default()
        });
        n
    }

    #[test]
    fn a_node_mounts_from_its_internal_and_external_ips_only() {
        let n = node(
            "n1",
            &[
                ("InternalIP", "10.0.0.5"),
                ("ExternalIP", "203.0.113.9"),
                ("Hostname", "n1"),
                ("InternalDNS", "n1.internal"),
                ("InternalIP", "fd00::5"),
                ("InternalIP", "not-an-address"),
                ("ExternalIP", "0.0.0.0"),
                ("ExternalIP", "::"),
            ],
        );
        let got: Vec<String> = node_addresses(&n, true)
            .iter()
            .map(|a| a.to_string())
            .collect();
        assert_eq!(got, ["10.0.0.5", "203.0.113.9", "fd00::5"]);
        assert!(node_addresses(&Node::default(), true).is_empty());
    }

    #[test]
    fn a_node_mounts_from_the_gateways_of_its_pod_cidrs() {
        let mut n = node("n1", &[("InternalIP", "10.0.0.5")]);
        n.spec = Some(k8s_openapi::api::core::v1::NodeSpec {
            pod_cidr: Some("10.244.3.0/24".into()),
            pod_cidrs: Some(vec!["10.244.3.0/24".into(), "fd00:10:244:3::/64".into()]),
            ..Default::default()
        });
        let got: Vec<String> = node_addresses(&n, true)
            .iter()
            .map(|a| a.to_string())
            .collect();
        assert_eq!(
            got,
            [
                "10.0.0.5",
                "10.244.3.0",
                "10.244.3.1",
                "fd00:10:244:3::",
                "fd00:10:244:3::1"
            ]
        );
        // Only podCIDR (older clusters): used alone.
        n.spec.as_mut().unwrap().pod_cidrs = None;
        assert_eq!(node_addresses(&n, true).len(), 3);
        // --admit-pod-cidr-gateways=false: the Node's own addresses only.
        assert_eq!(node_addresses(&n, false).len(), 1);
        // A pod's address is never among them; bad or tiny CIDRs give none.
        assert!(!node_addresses(&n, true).contains(&"10.244.3.2".parse().unwrap()));
        for bad in ["10.244.3.0", "x/24", "10.244.3.0/30", "10.244.3.0/x"] {
            assert!(pod_cidr_gateways(bad).is_empty(), "{bad}");
        }
        // Host bits in the CIDR are masked.
        assert_eq!(
            pod_cidr_gateways("10.244.3.9/24"),
            pod_cidr_gateways("10.244.3.0/24")
        );
    }

    #[test]
    fn the_client_list_follows_the_nodes_plus_the_operators_networks() {
        let extra = ClientList::parse("192.168.7.0/24").unwrap();
        let mut known = NodeAddresses::of(
            &[
                node("b", &[("InternalIP", "10.0.0.2")]),
                node("a", &[("InternalIP", "10.0.0.1")]),
            ],
            true,
        );
        assert_eq!(
            known.clients(&extra).to_string(),
            "10.0.0.1, 10.0.0.2, 192.168.7.0/24"
        );
        // A status update with the same address changes nothing.
        let before = known.clients(&extra);
        known.apply(&node("a", &[("InternalIP", "10.0.0.1"), ("Hostname", "a")]));
        assert_eq!(known.clients(&extra), before);
        // A node added gets in, a deleted one is cut off.
        known.apply(&node("c", &[("InternalIP", "10.0.0.3")]));
        known.delete(&node("a", &[]));
        let now = known.clients(&extra);
        assert!(now.allows("10.0.0.3".parse().unwrap()));
        assert!(!now.allows("10.0.0.1".parse().unwrap()));
        // A pod address is never in it.
        assert!(!now.allows("10.244.1.7".parse().unwrap()));
        // No nodes and no extra networks: nobody.
        assert!(NodeAddresses::new(true)
            .clients(&ClientList::default())
            .is_empty());
    }
}
