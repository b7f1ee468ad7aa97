//! The hostpath provisioner: a directory per claim on the node the claim's
//! pod was scheduled to, made by the provisioner instance running on that
//! node (node-local mode of the `external-storage` library: no helper pods,
//! no cross-node work).
//!
//! Modules, from the outside in: [`provisioner`] implements the library's
//! trait; [`config`] is the optional configuration file (which roots each
//! node and class has), [`reload`] takes a changed one without a restart,
//! [`roots`] holds the roots in force and picks one for a new volume;
//! [`params`] validates StorageClass parameters; [`pattern`] renders
//! `pathPattern`; [`fsroot`] is the only code that touches the disk;
//! [`quota`] enforces capacity with project quotas where the kernel can;
//! [`capacity`] (opt-in) tells the scheduler each node's free space.

pub mod capacity;
pub mod config;
pub mod fsroot;
pub mod params;
pub mod pattern;
pub mod provisioner;
pub mod quota;
pub mod reload;
pub mod roots;

/// The default provisioner name (StorageClass `provisioner`).
pub const PROVISIONER_NAME: &str = "external-storage.io/hostpath";
