//! Capacity the scheduler can see, without a CSI driver (opt-in,
//! `--publish-capacity`).
//!
//! kube-scheduler's volume-binding plugin filters out nodes that lack room
//! for a WaitForFirstConsumer claim when a `CSIDriver` object named exactly
//! like the class's provisioner has `storageCapacity: true`: it then reads
//! `CSIStorageCapacity` objects (any namespace) whose class is the claim's
//! and whose `nodeTopology` matches the node. No CSI driver has to run. So
//! each instance publishes one object per class of ours for its node, in
//! its own namespace: `capacity` = the root's free space minus what is
//! promised to quota'd volumes that are not full yet (each one's limit
//! minus its use, from the kernel's quota), rounded down to MiB, and
//! `maximumVolumeSize` = the same (a directory can grow to all of it). It rewrites an object only when the value changes, deletes the
//! objects of classes that are gone, and makes its Node the owner of every
//! object, so the garbage collector removes them with the Node (and stops
//! publishing while its Node does not exist).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use external_storage::annotations::HOSTNAME_LABEL;
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::api::storage::v1::{CSIStorageCapacity, StorageClass};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use kube::Client;

/// Label on every published object: the node's `kubernetes.io/hostname`.
pub const NODE_LABEL: &str = "hostpath.external-storage.io/capacity-node";
/// Field manager of the server-side applies.
const MANAGER: &str = "hostpath-provisioner-capacity";
const MIB: u64 = 1 << 20;

/// A provisioner name that cannot name a `CSIDriver`, so no capacity can
/// be published under it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "--publish-capacity needs a provisioner name that can name a CSIDriver \
     (a DNS subdomain of at most 63 characters, no `/`), e.g. \
     hostpath.external-storage.io; `{0}` is not one"
)]
pub struct NotADriverName(pub String);

/// Why the publisher cannot run for a provisioner name: a `CSIDriver`
/// name is a DNS subdomain of at most 63 characters (no `/`).
pub fn check_driver_name(name: &str) -> Result<(), NotADriverName> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric());
    if ok {
        Ok(())
    } else {
        Err(NotADriverName(name.to_string()))
    }
}

/// The object's name for `class` on `node`: unique per pair (the class
/// name's length comes first, so no two pairs join to the same text), or
/// `None` when it would exceed 253 characters.
pub fn object_name(node: &str, class: &str) -> Option<String> {
    let name = format!("hostpath-{}-{class}.{node}", class.len());
    (name.len() <= 253).then_some(name)
}

/// The room a class has on this node when the configuration gives it its
/// own roots (`roots::ClassRooms`); without one, every class has the room
/// of [`Publisher::root`].
pub trait ClassRoom: Send + Sync + std::fmt::Debug {
    /// Bytes a new volume of `class` can get on this node (0: no storage).
    fn room(&self, class: &str) -> u64;
}

/// Where this instance publishes, and for which node.
#[derive(Debug, Clone)]
pub struct Publisher {
    /// Provisioner names whose classes get an object (valid CSIDriver names).
    pub provisioners: Vec<String>,
    /// Namespace of the objects (the instance's own).
    pub namespace: String,
    /// The volume root whose free space is published.
    pub root: PathBuf,
    /// The Node object's name.
    pub node: String,
    /// How often free space is read again.
    pub interval: Duration,
    /// The quota'd volumes of this root, whose unused limits are promised.
    pub quotas: hostfs::quota::UsageCollector,
    /// Per-class room from the configuration in force, read every round
    /// (replaces `root` and `quotas` when set).
    pub rooms: Option<std::sync::Arc<dyn ClassRoom>>,
}

/// What a new volume can still get: `free` bytes minus the room promised to
/// quota'd volumes (limit minus use, for those with a limit), rounded down
/// to MiB.
pub fn available(free: u64, quotas: &[hostfs::quota::Usage]) -> u64 {
    let promised: u64 = quotas
        .iter()
        .filter(|u| u.limit_bytes > 0)
        .map(|u| u.limit_bytes.saturating_sub(u.used_bytes))
        .sum();
    free.saturating_sub(promised) / MIB * MIB
}

/// The object for `class`: the node's topology (its hostname label),
/// `bytes` as capacity and maximum volume size, owned by the Node.
pub fn capacity_object(
    name: &str,
    namespace: &str,
    node: &Node,
    hostname: &str,
    class: &str,
    bytes: u64,
) -> CSIStorageCapacity {
    let quantity = Quantity(format!("{}Mi", bytes / MIB));
    CSIStorageCapacity {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            namespace: Some(namespace.to_string()),
            labels: Some(BTreeMap::from([
                (NODE_LABEL.to_string(), hostname.to_string()),
                (
                    "app.kubernetes.io/managed-by".to_string(),
                    "hostpath-provisioner".to_string(),
                ),
            ])),
            owner_references: Some(vec![OwnerReference {
                api_version: "v1".into(),
                kind: "Node".into(),
                name: node.metadata.name.clone().unwrap_or_default(),
                uid: node.metadata.uid.clone().unwrap_or_default(),
                ..Default::default()
            }]),
            ..Default::default()
        },
        storage_class_name: class.to_string(),
        node_topology: Some(LabelSelector {
            match_labels: Some(BTreeMap::from([(
                HOSTNAME_LABEL.to_string(),
                hostname.to_string(),
            )])),
            ..Default::default()
        }),
        capacity: Some(quantity.clone()),
        maximum_volume_size: Some(quantity),
    }
}

/// Free bytes under `root` for an unprivileged writer, rounded down to MiB.
pub fn free_bytes(root: &Path) -> std::io::Result<u64> {
    let st = nix::sys::statvfs::statvfs(root).map_err(std::io::Error::from)?;
    let bytes = (st.blocks_available() as u64).saturating_mul(st.fragment_size() as u64);
    Ok(bytes / MIB * MIB)
}

impl Publisher {
    /// Publishes until the process ends: every `interval`, and logs (never
    /// exits on) API errors, which the next round retries.
    pub async fn run(self, client: Client) {
        let nodes: Api<Node> = Api::all(client.clone());
        let mut node = loop {
            match nodes.get(&self.node).await {
                Ok(n) => break n,
                Err(e) => {
                    tracing::warn!(node = self.node, error = %e, "capacity: cannot read my Node; retrying");
                    tokio::time::sleep(self.interval).await;
                }
            }
        };
        let hostname = external_storage::node::hostname_of(&node)
            .unwrap_or(&self.node)
            .to_string();
        let mut published = BTreeMap::new();
        loop {
            // A deleted Node takes its objects along (they are owned by it,
            // and the garbage collector removes them); publishing again
            // would only make new ones for the collector to remove.
            match nodes.get_opt(&self.node).await {
                Ok(None) => {
                    if !published.is_empty() {
                        tracing::info!(
                            node = self.node,
                            "capacity: my Node is gone; not publishing"
                        );
                        published.clear();
                    }
                    tokio::time::sleep(self.interval).await;
                    continue;
                }
                Ok(Some(n)) if n.metadata.uid != node.metadata.uid => {
                    tracing::info!(
                        node = self.node,
                        "capacity: my Node was re-created; republishing"
                    );
                    node = n;
                    published.clear();
                }
                _ => {}
            }
            if let Err(e) = self.round(&client, &node, &hostname, &mut published).await {
                tracing::warn!(error = %e, "capacity: publishing failed; retrying next round");
            }
            tokio::time::sleep(self.interval).await;
        }
    }

    /// One round: write changed objects, delete those of vanished classes.
    async fn round(
        &self,
        client: &Client,
        node: &Node,
        hostname: &str,
        published: &mut BTreeMap<String, u64>,
    ) -> anyhow::Result<()> {
        let classes: Api<StorageClass> = Api::all(client.clone());
        let caps: Api<CSIStorageCapacity> = Api::namespaced(client.clone(), &self.namespace);
        let ours: BTreeSet<String> = classes
            .list(&ListParams::default())
            .await?
            .items
            .into_iter()
            .filter(|c| self.provisioners.contains(&c.provisioner))
            .filter_map(|c| c.metadata.name)
            .collect();
        let single = match &self.rooms {
            Some(_) => 0,
            None => {
                let usages: Vec<_> = self.quotas.sample().into_iter().map(|(_, u)| u).collect();
                available(free_bytes(&self.root)?, &usages)
            }
        };
        for class in &ours {
            let bytes = self.rooms.as_ref().map_or(single, |r| r.room(class));
            let Some(name) = object_name(&self.node, class) else {
                tracing::warn!(class, "capacity: object name too long; not published");
                continue;
            };
            if published.get(&name) == Some(&bytes) {
                continue;
            }
            let obj = capacity_object(&name, &self.namespace, node, hostname, class, bytes);
            caps.patch(
                &name,
                &PatchParams::apply(MANAGER).force(),
                &Patch::Apply(&obj),
            )
            .await?;
            tracing::info!(class, bytes, "capacity published");
            published.insert(name, bytes);
        }
        let mine = ListParams::default().labels(&format!("{NODE_LABEL}={hostname}"));
        for obj in caps.list(&mine).await?.items {
            let (Some(name), class) = (obj.metadata.name, obj.storage_class_name) else {
                continue;
            };
            if !ours.contains(&class) {
                caps.delete(&name, &DeleteParams::default()).await?;
                published.remove(&name);
                tracing::info!(class, "capacity withdrawn: the class is gone");
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn driver_names_are_dns_subdomains_without_slash() {
        assert!(check_driver_name("hostpath.external-storage.io").is_ok());
        for bad in [
            "external-storage.io/hostpath",
            "",
            "-a",
            "a.",
            "Upper.io",
            &"a".repeat(64),
        ] {
            assert_eq!(check_driver_name(bad), Err(NotADriverName(bad.into())));
        }
    }

    #[test]
    fn names_are_unique_per_pair_and_bounded() {
        let a = object_name("b.c", "a").unwrap();
        let b = object_name("c", "a.b").unwrap();
        assert_ne!(a, b);
        assert_eq!(a, "hostpath-1-a.b.c");
        assert!(object_name(&"n".repeat(200), &"c".repeat(60)).is_none());
    }

    #[test]
    fn the_object_names_the_node_by_its_hostname_label_and_is_owned_by_it() {
        let node = Node {
            metadata: ObjectMeta {
                name: Some("node-b.example.com".into()),
                uid: Some("u-1".into()),
                ..Default::default()
            },
            ..Default::default()
        };
        let o = capacity_object("n", "ns", &node, "node-b", "fast", 5 * MIB + 7);
        assert_eq!(o.capacity, Some(Quantity("5Mi".into())));
        assert_eq!(o.maximum_volume_size, o.capacity);
        assert_eq!(o.storage_class_name, "fast");
        let sel = o.node_topology.unwrap().match_labels.unwrap();
        assert_eq!(sel[HOSTNAME_LABEL], "node-b");
        let owner = &o.metadata.owner_references.unwrap()[0];
        assert_eq!((owner.kind.as_str(), owner.uid.as_str()), ("Node", "u-1"));
        assert_eq!(o.metadata.labels.unwrap()[NODE_LABEL], "node-b");
    }

    #[test]
    fn room_promised_to_quotad_volumes_is_not_offered_again() {
        use hostfs::quota::Usage;
        let u = |used, limit| Usage {
            used_bytes: used,
            limit_bytes: limit,
        };
        // 100 MiB free; a 30 MiB volume holding 10 is owed 20 more; a
        // volume without a limit (0) and a full one are owed nothing.
        let quotas = [u(10 * MIB, 30 * MIB), u(5 * MIB, 0), u(8 * MIB, 8 * MIB)];
        assert_eq!(available(100 * MIB, &quotas), 80 * MIB);
        // Over-committed: nothing left, never an underflow.
        assert_eq!(available(10 * MIB, &quotas), 0);
        assert_eq!(available(7 * MIB + 5, &[]), 7 * MIB);
    }

    #[test]
    fn free_space_is_read_and_rounded_to_mib() {
        let tmp = tempfile::tempdir().unwrap();
        let b = free_bytes(tmp.path()).unwrap();
        assert!(b > 0 && b.is_multiple_of(MIB), "{b}");
        assert!(free_bytes(&tmp.path().join("missing")).is_err());
    }
}
