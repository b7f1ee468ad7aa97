//! The host filesystem pieces that the directory-backed provisioners share
//! (hostpath and nfs make a directory per claim on a disk they own;
//! local-volume cleans whole volumes). Provisioner crates may not depend on
//! each other, and this code is where tenants' files meet the host, so it
//! lives once, here, with its guarantees stated in each module:
//!
//! - [`relpath`]: the text rule for a path below a root;
//! - [`op`]: the I/O error of a root operation (operation, path, cause);
//! - [`root`]: a root directory opened once, every volume reached beneath
//!   its handle without following symlinks, with ownership records outside
//!   the volumes (a directory is deleted only when its record names it),
//!   those records held in memory by the private `records` index (the
//!   nesting checks read them on every claim);
//! - [`intent`]: pending records, the provisioning intent kept on the
//!   provisioner's own disk (for whom a volume is being made, until its PV
//!   is saved), which the controller's intent sweep reads;
//! - [`stamp`]: when a directory last changed, how in-memory record caches
//!   (the records index, nfs's export records) notice others' changes;
//! - [`quota`]: project quotas through the kernel interfaces, their ids and
//!   limits, and `Q_GETQUOTA` usage as Prometheus gauges;
//! - [`tree`]: removing a tenant's tree with bounded descriptors and memory;
//! - [`archive`]: archives of deleted volumes (`onDelete: archive`), their
//!   records and the retention sweep that removes only archives made here.
//!
//! Nothing here talks to Kubernetes.

pub mod archive;
#[cfg(any(test, feature = "test-support"))]
pub mod hostile;
pub mod intent;
pub mod op;
pub mod quota;
mod records;
pub mod relpath;
pub mod root;
pub mod stamp;
pub mod tree;
