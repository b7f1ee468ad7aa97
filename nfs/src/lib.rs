//! `nfs-provisioner`: an NFS-Ganesha server in a pod, and an export of it
//! per claim.
//!
//! The crate is the control plane around a real NFS server; it never speaks
//! NFS data operations itself. Module map:
//!
//! - [`params`]: StorageClass parameters, validated into a typed struct.
//! - [`ganesha`]: the Ganesha and D-Bus configuration files we render (pure).
//! - [`exports`]: the export root: identity, per-export records (which are
//!   also the Ganesha config snippets), id/GID allocation, volume directories
//!   made and removed without following symlinks.
//! - [`rpc`]: an ONC RPC `NULL` ping, the server's readiness probe.
//! - [`dbus`]: Ganesha's `ExportMgr` D-Bus interface (add, update, remove, list).
//! - [`server`]: supervision of rpcbind, a private D-Bus daemon and
//!   `ganesha.nfsd`: restart with backoff, readiness only while it answers
//!   and every recorded export is live.
//! - [`address`]: which server address goes into the PVs.
//! - [`export_disk`]: the server's own disk (its claim's PV) kept when the
//!   namespace or claim is deleted.
//! - [`node_clients`]: who may mount by default: the Nodes' addresses,
//!   watched live.
//! - [`provisioner`]: the [`external_storage::Provisioner`] implementation.
//! - [`seccomp`]: the container's seccomp profile (the runtime default plus
//!   `name_to_handle_at`) and its installation for the kubelet.

pub mod address;
pub mod dbus;
pub mod export_disk;
pub mod exports;
pub mod ganesha;
pub mod node_clients;
pub mod params;
pub mod provisioner;
pub mod rpc;
pub mod seccomp;
pub mod server;
pub mod startup;

/// The default provisioner name (StorageClass `provisioner`).
pub const PROVISIONER_NAME: &str = "external-storage.io/nfs";

/// PV annotation: the identity (a UUID kept on the export root) of the
/// instance that made the volume. An instance deletes only its own volumes.
pub const IDENTITY_ANNOTATION: &str = "nfs.external-storage.io/identity";

/// PV annotation: the Ganesha export id of the volume (informational).
pub const EXPORT_ID_ANNOTATION: &str = "nfs.external-storage.io/export-id";

/// PV annotation read by the kubelet: a supplemental group for every pod
/// using the volume.
pub const GID_ANNOTATION: &str = "pv.beta.kubernetes.io/gid";
