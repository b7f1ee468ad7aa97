//! The claim and PV caches hold each object compactly: its name (and
//! namespace) for the store's index, and the object itself as JSON, cut to
//! what the decisions and the provisioners read.
//!
//! A `PersistentVolume` as a Rust value is several kilobytes even when
//! nearly empty (its spec has a field for every volume type), and a claim
//! over one; every map in either (annotations, labels, capacity) costs a
//! whole B-tree node. With 10,000 claims and 10,000 PVs cached that was
//! most of the hostpath binary's 119 MiB at start. As JSON, a bound
//! hostpath claim or PV is well under a kilobyte. A reconcile decodes the
//! one object it works on ([`Compact::get`]), and the claim loop the PV it
//! looks up: microseconds, once per reconcile.
//!
//! What is dropped before storing ([`Slim::slim`]): `managedFields` (on a
//! real API server the largest part of most objects), the
//! `kubectl.kubernetes.io/last-applied-configuration` annotation (a copy of
//! the object), a claim's `status` (nothing reads it: the controller
//! decides from the spec, the annotations and its PV) and everything of a
//! PV's `status` but `phase`; of a Node, everything but its name and its
//! `kubernetes.io/hostname` label. A provisioner therefore sees the claim
//! in [`ProvisionOptions`](crate::ProvisionOptions) and the PV in `delete`
//! without them.
//!
//! The JSON is then stored as an LZ4 block against a per-kind
//! [`Dictionary`]: the first object of that kind this process encoded.
//! The claims (and the PVs) of one cluster share most of their text (every
//! key, the class, the provisioner's annotations, the namespace, the node),
//! so each object keeps little more than its own names and UIDs. Decoding
//! one is a decompression and a JSON parse, once per reconcile.
//!
//! The initial list of a cache is read in pages of [`LIST_PAGE_SIZE`]: a
//! page is decoded whole (full `k8s-openapi` values) before its objects
//! are made compact, so with 10,000 objects the page, not the cache, set
//! the process's peak at client-go's 500 (docs/performance.md).

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;
use std::sync::OnceLock;

use k8s_openapi::api::core::v1::{
    Node, PersistentVolume, PersistentVolumeClaim, PersistentVolumeStatus,
};
use kube::api::ObjectMeta;
use kube::core::PartialObjectMeta;
use kube::runtime::watcher;
use kube::Resource;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};

use crate::annotations::HOSTNAME_LABEL;

/// Objects per list request when a compact cache fills (client-go and
/// kube-runtime default to 500): 100 requests instead of 20 for 10,000
/// objects, at start and on a relist only, for a peak RSS 7–8 MiB lower
/// at 10,000 claims and PVs.
pub const LIST_PAGE_SIZE: u32 = 100;

/// The watch of a compact cache: lists in pages of [`LIST_PAGE_SIZE`].
pub fn watch_config() -> watcher::Config {
    watcher::Config::default().page_size(LIST_PAGE_SIZE)
}

/// The annotation `kubectl apply` keeps a copy of the whole object in.
pub const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// An object whose unread parts can be dropped before it is cached.
pub trait Slim {
    /// Drop what no decision and no provisioner reads (see the module docs).
    fn slim(&mut self);
}

fn slim_meta(meta: &mut ObjectMeta) {
    meta.managed_fields = None;
    if let Some(ann) = meta.annotations.as_mut() {
        ann.remove(LAST_APPLIED);
        if ann.is_empty() {
            meta.annotations = None;
        }
    }
}

impl Slim for PersistentVolumeClaim {
    fn slim(&mut self) {
        slim_meta(&mut self.metadata);
        self.status = None;
    }
}

impl Slim for PersistentVolume {
    fn slim(&mut self) {
        slim_meta(&mut self.metadata);
        let phase = self.status.take().and_then(|s| s.phase);
        self.status = phase.map(|phase| PersistentVolumeStatus {
            phase: Some(phase),
            ..Default::default()
        });
    }
}

/// Nodes are cached only to tell whether a node still exists, by name (a
/// claim's selected node) or by its `kubernetes.io/hostname` label (what PV
/// node affinity names; the deleted-node sweep of [`super::orphans`]): the
/// name and that one label are all that is kept.
impl Slim for PartialObjectMeta<Node> {
    fn slim(&mut self) {
        let hostname = self
            .metadata
            .labels
            .take()
            .and_then(|mut l| l.remove_entry(HOSTNAME_LABEL));
        self.metadata = ObjectMeta {
            name: self.metadata.name.take(),
            labels: hostname.map(|kv| [kv].into()),
            ..Default::default()
        };
    }
}

/// The kinds the caches hold as [`Compact`]: slimmed, and compressed
/// against their kind's dictionary.
pub trait Cacheable: Resource + Slim + Serialize + DeserializeOwned {
    /// This kind's dictionary, shared by every cache of it in the process.
    fn dictionary() -> &'static Dictionary;
}

impl Cacheable for PersistentVolumeClaim {
    fn dictionary() -> &'static Dictionary {
        static CLAIMS: Dictionary = Dictionary::new();
        &CLAIMS
    }
}

impl Cacheable for PersistentVolume {
    fn dictionary() -> &'static Dictionary {
        static VOLUMES: Dictionary = Dictionary::new();
        &VOLUMES
    }
}

/// At most this much of the first object becomes the dictionary (LZ4
/// looks back 64 KiB; a claim or PV is well under this).
const DICTIONARY_MAX: usize = 16 * 1024;

/// The text objects of one kind are compressed against: fixed, once set,
/// for the life of the process (what was compressed against it must be
/// decompressed against the same bytes).
#[derive(Debug, Default)]
pub struct Dictionary(OnceLock<Box<[u8]>>);

impl Dictionary {
    /// An unset dictionary: the first [`Dictionary::compress`] sets it.
    pub const fn new() -> Self {
        Self(OnceLock::new())
    }

    /// `json` as an LZ4 block (its length prepended); the first call's
    /// `json` becomes the dictionary.
    pub fn compress(&self, json: &[u8]) -> Box<[u8]> {
        let dict = self
            .0
            .get_or_init(|| json[..json.len().min(DICTIONARY_MAX)].into());
        lz4_flex::block::compress_prepend_size_with_dict(json, dict).into_boxed_slice()
    }

    /// The bytes [`Dictionary::compress`] made `block` of.
    pub fn decompress(&self, block: &[u8]) -> Vec<u8> {
        let dict = self
            .0
            .get()
            .expect("a block exists only once its dictionary was set");
        lz4_flex::block::decompress_size_prepended_with_dict(block, dict)
            .expect("decompressing a block this cache compressed itself")
    }
}

/// One cached object: name and namespace (the store's key), and the
/// slimmed object as JSON compressed against its kind's [`Dictionary`].
pub struct Compact<K> {
    meta: ObjectMeta,
    block: Box<[u8]>,
    _kind: PhantomData<fn() -> K>,
}

impl<K> Clone for Compact<K> {
    fn clone(&self) -> Self {
        Self {
            meta: self.meta.clone(),
            block: self.block.clone(),
            _kind: PhantomData,
        }
    }
}

impl<K> fmt::Debug for Compact<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Compact")
            .field("namespace", &self.meta.namespace)
            .field("name", &self.meta.name)
            .field("bytes", &self.block.len())
            .finish()
    }
}

impl<K: Cacheable> Compact<K> {
    /// `obj`, slimmed and encoded.
    pub fn new(mut obj: K) -> Self {
        obj.slim();
        let json = serde_json::to_vec(&obj).expect("a Kubernetes object always encodes as JSON");
        let block = K::dictionary().compress(&json);
        let m = obj.meta_mut();
        Self {
            meta: ObjectMeta {
                name: m.name.take(),
                namespace: m.namespace.take(),
                ..Default::default()
            },
            block,
            _kind: PhantomData,
        }
    }

    /// The (slimmed) object.
    pub fn get(&self) -> K {
        let json = K::dictionary().decompress(&self.block);
        serde_json::from_slice(&json).expect("decoding JSON this cache encoded itself")
    }

    /// Size of the stored (compressed) object, in bytes.
    pub fn encoded_len(&self) -> usize {
        self.block.len()
    }
}

impl<K: Resource<DynamicType = ()>> Resource for Compact<K> {
    type DynamicType = ();
    type Scope = K::Scope;

    fn kind(dt: &()) -> Cow<'_, str> {
        K::kind(dt)
    }

    fn group(dt: &()) -> Cow<'_, str> {
        K::group(dt)
    }

    fn version(dt: &()) -> Cow<'_, str> {
        K::version(dt)
    }

    fn api_version(dt: &()) -> Cow<'_, str> {
        K::api_version(dt)
    }

    fn plural(dt: &()) -> Cow<'_, str> {
        K::plural(dt)
    }

    fn meta(&self) -> &ObjectMeta {
        &self.meta
    }

    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.meta
    }
}

/// Decodes a `K` and stores it compactly (kube-runtime's `Controller` asks
/// for `DeserializeOwned`; the caches are filled through [`event`]).
impl<'de, K: Cacheable> Deserialize<'de> for Compact<K> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        K::deserialize(d).map(Compact::new)
    }
}

/// A watch event with its object made compact.
pub fn event<K: Cacheable>(ev: watcher::Event<K>) -> watcher::Event<Compact<K>> {
    use watcher::Event as E;
    match ev {
        E::Apply(o) => E::Apply(Compact::new(o)),
        E::Delete(o) => E::Delete(Compact::new(o)),
        E::Init => E::Init,
        E::InitApply(o) => E::InitApply(Compact::new(o)),
        E::InitDone => E::InitDone,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ManagedFieldsEntry;

    #[test]
    fn a_claim_round_trips_without_what_nobody_reads() {
        let mut c = claim("ns", "c")
            .provisioner("p")
            .class("fast")
            .selected_node("n1")
            .request("1Gi")
            .build();
        c.metadata.managed_fields = Some(vec![ManagedFieldsEntry {
            manager: Some("kubectl".into()),
            ..Default::default()
        }]);
        c.metadata
            .annotations
            .get_or_insert_with(Default::default)
            .insert(LAST_APPLIED.into(), "{...}".into());
        c.status = Some(Default::default());
        let compact = Compact::new(c.clone());
        assert_eq!(compact.meta().name.as_deref(), Some("c"));
        assert_eq!(compact.meta().namespace.as_deref(), Some("ns"));
        let back = compact.get();
        let mut want = c;
        want.metadata.managed_fields = None;
        want.metadata
            .annotations
            .as_mut()
            .unwrap()
            .remove(LAST_APPLIED);
        want.status = None;
        assert_eq!(back, want);
    }

    #[test]
    fn a_pv_keeps_its_spec_and_phase() {
        let mut p = pv("pvc-1")
            .claim_ref("ns", "c")
            .capacity("1Gi")
            .phase("Released")
            .build();
        p.status.as_mut().unwrap().message = Some("long text".into());
        let back = Compact::new(p.clone()).get();
        assert_eq!(back.spec, p.spec);
        assert_eq!(back.metadata, p.metadata);
        assert_eq!(back.status.unwrap().phase.as_deref(), Some("Released"));
    }

    #[test]
    fn similar_objects_are_stored_in_a_fraction_of_their_json() {
        let json = |name: &str, uid: &str| {
            let mut c = claim("tenant-a", name)
                .provisioner("hostpath.external-storage.io")
                .class("local-fast")
                .selected_node("worker-17.example.com")
                .request("10Gi")
                .build();
            c.metadata.uid = Some(uid.into());
            c.spec.get_or_insert_with(Default::default).volume_name = Some(format!("pvc-{uid}"));
            serde_json::to_vec(&c).unwrap()
        };
        let dict = Dictionary::new();
        let first = json("data-0", "0b6e7c52-3f6a-4d0e-9a55-0c1f1d7e2a10");
        let block = dict.compress(&first);
        assert_eq!(dict.decompress(&block), first);
        let second = json("data-1", "9f3c2b1a-7d4e-4c6b-8e2f-5a1b0c9d8e7f");
        let block = dict.compress(&second);
        assert_eq!(dict.decompress(&block), second);
        // Its names and UIDs are new; the rest is in the dictionary.
        assert!(
            block.len() * 3 < second.len(),
            "{} bytes of JSON stored in {}",
            second.len(),
            block.len()
        );
    }

    #[test]
    fn an_object_unlike_the_dictionary_still_round_trips() {
        let dict = Dictionary::new();
        dict.compress(b"{}");
        let other = serde_json::to_vec(&pv("pvc-9").capacity("5Gi").build()).unwrap();
        assert_eq!(dict.decompress(&dict.compress(&other)), other);
        assert_eq!(dict.decompress(&dict.compress(b"")), b"");
    }

    #[test]
    fn a_node_keeps_its_name_and_hostname_label_only() {
        let node = |labels: &[(&str, &str)]| PartialObjectMeta::<Node> {
            metadata: ObjectMeta {
                name: Some("n1.example.com".into()),
                labels: Some(
                    labels
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                ),
                uid: Some("u".into()),
                ..Default::default()
            },
            ..Default::default()
        };
        let mut n = node(&[("a", "b"), (HOSTNAME_LABEL, "n1")]);
        n.slim();
        assert_eq!(n.metadata.name.as_deref(), Some("n1.example.com"));
        assert_eq!(
            n.metadata.labels,
            Some([(HOSTNAME_LABEL.to_string(), "n1".to_string())].into())
        );
        assert_eq!(n.metadata.uid, None);
        let mut n = node(&[("a", "b")]);
        n.slim();
        assert_eq!(n.metadata.labels, None);
    }
}
