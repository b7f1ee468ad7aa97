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
//! `pathPattern`; [`capacity`] (opt-in) tells the scheduler each node's
//! free space. The disk itself is touched only through the shared
//! `hostfs` crate (the rooted volume directory, project quotas).

pub mod capacity;
pub mod config;
pub mod params;
pub mod pattern;
pub mod provisioner;
pub mod reload;
pub mod roots;

/// The default provisioner name (StorageClass `provisioner`).
pub const PROVISIONER_NAME: &str = "external-storage.io/hostpath";
