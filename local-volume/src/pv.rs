//! The PersistentVolume of a discovered volume, as a pure function of the
//! volume, its class and this node: name, capacity, labels, node affinity.
//!
//! Names are the Go provisioner's (`local-pv-<hex fnv-1a 32 of entry name,
//! node name, class>`), so a volume keeps its PV name across the switch.

use std::collections::BTreeMap;
use std::path::Path;

use external_storage::annotations::{HOSTNAME_LABEL, PROVISIONED_BY};
use k8s_openapi::api::core::v1::{
    LocalVolumeSource, Node, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm,
    PersistentVolume, PersistentVolumeSpec, VolumeNodeAffinity,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

use crate::config::{ClassConfig, Config, VolumeMode};
use crate::labels::NODE_LABEL;

const GIB: u64 = 1 << 30;
const MIB: u64 = 1 << 20;

/// FNV-1a, 32 bits, over the concatenation of `parts`.
pub fn fnv32a(parts: &[&str]) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in parts.iter().flat_map(|p| p.bytes()) {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

/// `local-pv-<hex>` for the discovery entry `entry` of `class` on `node`.
pub fn pv_name(entry: &str, node: &str, class: &str) -> String {
    format!("local-pv-{:x}", fnv32a(&[entry, node, class]))
}

/// Rounds down to whole GiB from 10 GiB, whole MiB from 10 MiB, else bytes.
pub fn round_capacity(bytes: u64) -> u64 {
    for unit in [GIB, MIB] {
        if bytes / unit >= 10 {
            return bytes / unit * unit;
        }
    }
    bytes
}

/// The quantity for a rounded capacity: `12Gi`, `20Mi` or plain bytes.
pub fn capacity_quantity(bytes: u64) -> Quantity {
    let q = if bytes >= GIB && bytes.is_multiple_of(GIB) {
        format!("{}Gi", bytes / GIB)
    } else if bytes >= MIB && bytes.is_multiple_of(MIB) {
        format!("{}Mi", bytes / MIB)
    } else {
        bytes.to_string()
    };
    Quantity(q)
}

/// The value of [`NODE_LABEL`] for `node`: the name itself when it is a
/// valid label value, else a hash of it (node names may be 253 characters).
pub fn node_label_value(node: &str) -> String {
    let valid = !node.is_empty()
        && node.len() <= 63
        && node
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && node.starts_with(|c: char| c.is_ascii_alphanumeric())
        && node.ends_with(|c: char| c.is_ascii_alphanumeric());
    if valid {
        node.to_string()
    } else {
        format!("node-{:08x}", fnv32a(&[node]))
    }
}

/// What this instance knows about its node, fixed at start-up.
#[derive(Clone, Debug)]
pub struct NodeInfo {
    /// Node name.
    pub name: String,
    /// Node UID (for owner references).
    pub uid: String,
    /// The node's `kubernetes.io/hostname` label (the name if unset).
    pub hostname: String,
    /// All node labels.
    pub labels: BTreeMap<String, String>,
}

impl NodeInfo {
    /// From the Node object.
    pub fn from_node(node: &Node) -> NodeInfo {
        let name = node.metadata.name.clone().unwrap_or_default();
        let labels = node.metadata.labels.clone().unwrap_or_default();
        NodeInfo {
            uid: node.metadata.uid.clone().unwrap_or_default(),
            hostname: labels
                .get(HOSTNAME_LABEL)
                .cloned()
                .unwrap_or_else(|| name.clone()),
            labels,
            name,
        }
    }

    /// [`node_label_value`] of this node.
    pub fn label_value(&self) -> String {
        node_label_value(&self.name)
    }
}

/// A usable volume found in a discovery directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Found {
    /// Class name.
    pub class: String,
    /// Entry name in the discovery directory.
    pub entry: String,
    /// A mount point (`false`: a block device).
    pub filesystem: bool,
    /// Raw size in bytes (before rounding).
    pub bytes: u64,
}

impl Found {
    /// `Filesystem` or `Block`: what is behind the entry.
    pub fn kind(&self) -> &'static str {
        if self.filesystem {
            "Filesystem"
        } else {
            "Block"
        }
    }
}

/// What the PV takes from its StorageClass.
#[derive(Clone, Debug, Default)]
pub struct ClassFacts {
    /// `reclaimPolicy` (default `Delete`).
    pub reclaim_policy: String,
    /// `mountOptions`.
    pub mount_options: Option<Vec<String>>,
}

/// The PV for `found`.
pub fn build(
    found: &Found,
    class: &ClassConfig,
    facts: &ClassFacts,
    config: &Config,
    node: &NodeInfo,
    provisioner: &str,
) -> PersistentVolume {
    let mut labels: BTreeMap<String, String> = config
        .node_labels_for_pv
        .iter()
        .filter_map(|k| node.labels.get(k).map(|v| (k.clone(), v.clone())))
        .collect();
    labels.extend(config.labels_for_pv.clone());
    labels.insert(NODE_LABEL.into(), node.label_value());

    // The hostname label's value, never the node name: the scheduler and
    // the kubelet match PV node affinity against labels only, so a
    // `matchFields metadata.name` term would never match there.
    let node_term = NodeSelectorTerm {
        match_expressions: Some(vec![NodeSelectorRequirement {
            key: HOSTNAME_LABEL.into(),
            operator: "In".into(),
            values: Some(vec![node.hostname.clone()]),
        }]),
        match_fields: None,
    };
    let mut terms = vec![node_term];
    terms.extend(class.selector.iter().cloned());

    let fs_type = (class.volume_mode == VolumeMode::Filesystem && !found.filesystem)
        .then(|| class.fs_type.clone())
        .flatten();
    let owner = (config.set_pv_owner_ref && !node.uid.is_empty()).then(|| {
        vec![OwnerReference {
            api_version: "v1".into(),
            kind: "Node".into(),
            name: node.name.clone(),
            uid: node.uid.clone(),
            ..Default::default()
        }]
    });
    PersistentVolume {
        metadata: ObjectMeta {
            name: Some(pv_name(&found.entry, &node.name, &found.class)),
            labels: Some(labels),
            annotations: Some(BTreeMap::from([(
                PROVISIONED_BY.to_string(),
                provisioner.to_string(),
            )])),
            owner_references: owner,
            ..Default::default()
        },
        spec: Some(PersistentVolumeSpec {
            capacity: Some(BTreeMap::from([(
                "storage".to_string(),
                capacity_quantity(round_capacity(found.bytes)),
            )])),
            access_modes: Some(vec![class.access_mode.clone()]),
            persistent_volume_reclaim_policy: Some(if facts.reclaim_policy.is_empty() {
                "Delete".into()
            } else {
                facts.reclaim_policy.clone()
            }),
            storage_class_name: Some(found.class.clone()),
            volume_mode: Some(class.volume_mode.as_str().into()),
            mount_options: facts
                .mount_options
                .clone()
                .filter(|_| class.volume_mode == VolumeMode::Filesystem),
            local: Some(LocalVolumeSource {
                path: class.host_dir.join(&found.entry).display().to_string(),
                fs_type,
            }),
            node_affinity: Some(VolumeNodeAffinity {
                required: Some(NodeSelector {
                    node_selector_terms: terms,
                }),
            }),
            ..Default::default()
        }),
        status: None,
    }
}

/// The discovery entry of a PV of `class`: the last component of its
/// `local.path` when that path is exactly `<hostDir>/<entry>`.
pub fn entry_of(pv: &PersistentVolume, class: &ClassConfig) -> Option<String> {
    let path = Path::new(&pv.spec.as_ref()?.local.as_ref()?.path);
    let rest = path.strip_prefix(&class.host_dir).ok()?;
    let mut parts = rest.components();
    let first = parts.next()?;
    if parts.next().is_some() {
        return None;
    }
    match first {
        std::path::Component::Normal(s) => s.to_str().map(str::to_string),
        _ => None,
    }
}

/// The PV's class name, if any.
pub fn class_of(pv: &PersistentVolume) -> Option<&str> {
    pv.spec.as_ref()?.storage_class_name.as_deref()
}

/// The PV's phase, if known.
pub fn phase_of(pv: &PersistentVolume) -> Option<&str> {
    pv.status.as_ref()?.phase.as_deref()
}

/// The PV's reclaim policy (`Retain` when unset, like the API default for static PVs).
pub fn policy_of(pv: &PersistentVolume) -> &str {
    pv.spec
        .as_ref()
        .and_then(|s| s.persistent_volume_reclaim_policy.as_deref())
        .unwrap_or("Retain")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn names_are_the_go_provisioners() {
        // FNV-1a 32 test vectors.
        assert_eq!(fnv32a(&[""]), 0x811c9dc5);
        assert_eq!(fnv32a(&["a"]), 0xe40c292c);
        assert_eq!(fnv32a(&["foobar"]), 0xbf9cf968);
        assert_eq!(fnv32a(&["foo", "bar"]), fnv32a(&["foobar"]));
        assert_eq!(pv_name("foo", "ba", "r"), "local-pv-bf9cf968");
        assert_ne!(pv_name("vol1", "n1", "a"), pv_name("vol1", "n1", "b"));
    }

    #[test]
    fn capacity_rounds_down_to_readable_units() {
        assert_eq!(round_capacity(10 * GIB + 5), 10 * GIB);
        assert_eq!(
            round_capacity(9 * GIB + 5 * MIB + 7),
            9 * 1024 * MIB + 5 * MIB
        );
        assert_eq!(round_capacity(10 * MIB + 1), 10 * MIB);
        assert_eq!(round_capacity(9 * MIB + 1), 9 * MIB + 1);
        assert_eq!(capacity_quantity(12 * GIB).0, "12Gi");
        assert_eq!(capacity_quantity(20 * MIB).0, "20Mi");
        assert_eq!(capacity_quantity(9 * 1024 * MIB + 5 * MIB).0, "9221Mi");
        assert_eq!(capacity_quantity(4097).0, "4097");
    }

    #[test]
    fn node_label_values_are_valid() {
        assert_eq!(node_label_value("node-1"), "node-1");
        let long = "n".repeat(100);
        let v = node_label_value(&long);
        assert!(v.len() <= 63 && v.starts_with("node-"), "{v}");
        assert_ne!(node_label_value("-x"), "-x");
    }

    fn config() -> Config {
        Config::from_value(
            serde_yaml::from_str(
                "storageClassMap:\n  fast: {hostDir: /mnt/fast, mountDir: /in/fast, fsType: ext4, selector: [{matchExpressions: [{key: zone, operator: In, values: [a]}]}]}\n  raw: {hostDir: /mnt/raw, volumeMode: Block}\nnodeLabelsForPV: [zone, missing]\nlabelsForPV: {team: x}\nsetPVOwnerRef: true\n",
            )
            .unwrap(),
        )
        .unwrap()
    }

    fn node(hostname: &str) -> NodeInfo {
        NodeInfo {
            name: "n1".into(),
            uid: "u1".into(),
            hostname: hostname.into(),
            labels: BTreeMap::from([("zone".to_string(), "a".to_string())]),
        }
    }

    #[test]
    fn filesystem_pv_has_path_capacity_affinity_labels_and_owner() {
        let c = config();
        assert_eq!(c.min_resync_period, Duration::from_secs(300));
        let found = Found {
            class: "fast".into(),
            entry: "vol1".into(),
            filesystem: true,
            bytes: 20 * MIB + 123,
        };
        let facts = ClassFacts {
            reclaim_policy: "Retain".into(),
            mount_options: Some(vec!["noatime".into()]),
        };
        let pv = build(&found, &c.classes["fast"], &facts, &c, &node("n1"), "p");
        assert_eq!(
            pv.metadata.name.as_deref(),
            Some(pv_name("vol1", "n1", "fast").as_str())
        );
        let labels = pv.metadata.labels.as_ref().unwrap();
        assert_eq!(labels["zone"], "a");
        assert_eq!(labels["team"], "x");
        assert_eq!(labels[NODE_LABEL], "n1");
        assert!(!labels.contains_key("missing"));
        assert_eq!(
            pv.metadata.annotations.as_ref().unwrap()[PROVISIONED_BY],
            "p"
        );
        assert_eq!(pv.metadata.owner_references.as_ref().unwrap()[0].uid, "u1");
        let spec = pv.spec.as_ref().unwrap();
        assert_eq!(spec.capacity.as_ref().unwrap()["storage"].0, "20Mi");
        assert_eq!(spec.local.as_ref().unwrap().path, "/mnt/fast/vol1");
        assert_eq!(
            spec.local.as_ref().unwrap().fs_type,
            None,
            "a mount point is not formatted"
        );
        assert_eq!(
            spec.persistent_volume_reclaim_policy.as_deref(),
            Some("Retain")
        );
        assert_eq!(
            spec.mount_options.as_deref(),
            Some(&["noatime".to_string()][..])
        );
        let terms = &spec
            .node_affinity
            .as_ref()
            .unwrap()
            .required
            .as_ref()
            .unwrap()
            .node_selector_terms;
        assert_eq!(terms.len(), 2, "node term plus the class selector");
        let req = &terms[0].match_expressions.as_ref().unwrap()[0];
        assert_eq!(
            (req.key.as_str(), req.values.as_deref()),
            (HOSTNAME_LABEL, Some(&["n1".to_string()][..]))
        );
        assert!(terms[0].match_fields.is_none());
        assert_eq!(entry_of(&pv, &c.classes["fast"]).as_deref(), Some("vol1"));
        assert_eq!(entry_of(&pv, &c.classes["raw"]), None);
    }

    #[test]
    fn block_pv_and_a_hostname_label_that_differs_from_the_name() {
        let c = config();
        let found = Found {
            class: "raw".into(),
            entry: "disk0".into(),
            filesystem: false,
            bytes: 16 * MIB,
        };
        let pv = build(
            &found,
            &c.classes["raw"],
            &ClassFacts::default(),
            &c,
            &node("host-1"),
            "p",
        );
        let spec = pv.spec.as_ref().unwrap();
        assert_eq!(spec.volume_mode.as_deref(), Some("Block"));
        assert_eq!(
            spec.persistent_volume_reclaim_policy.as_deref(),
            Some("Delete")
        );
        let term = e2e_support::first_affinity_term(&pv);
        // Labels only: the hostname label's value, no node-name field term.
        assert!(term.match_fields.is_none());
        assert_eq!(
            term.match_expressions.as_ref().unwrap()[0]
                .values
                .as_deref(),
            Some(&["host-1".to_string()][..])
        );
        // A block device behind a Filesystem class is formatted with fsType.
        let found = Found {
            class: "fast".into(),
            ..found
        };
        let pv = build(
            &found,
            &c.classes["fast"],
            &ClassFacts::default(),
            &c,
            &node("n1"),
            "p",
        );
        assert_eq!(
            pv.spec.unwrap().local.unwrap().fs_type.as_deref(),
            Some("ext4")
        );
    }
}
