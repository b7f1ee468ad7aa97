//! The static local-volume provisioner: one instance per node (a DaemonSet)
//! turns the disks an operator mounted (or linked, for block devices) under
//! discovery directories into local PersistentVolumes, and cleans and
//! re-offers them when their claims are gone.
//!
//! Two loops run side by side under one shutdown token:
//! - [`discovery`]: this crate's loop, creating PVs for what it finds;
//! - the `external-storage` library's controller in node-local mode, whose
//!   volume loop hands each `Released` + `Delete` PV of this node to
//!   `delete` of [`volumes::LocalVolumes`] (its `Provisioner` impl), which cleans the volume; the library
//!   then deletes the PV and discovery offers the volume again.
//!
//! Modules, from the outside in: [`config`] validates the YAML; [`scan`]
//! reads the mount table and discovery directories; [`pv`] builds PVs
//! (pure); [`state`] records on the host whether a volume may hold data;
//! [`clean`] is the only code that destroys data; [`volumes`] runs cleanings
//! and implements the library's trait; [`metrics`] exposes both loops.

pub mod clean;
pub mod config;
pub mod discovery;
pub mod labels;
pub mod metrics;
pub mod pv;
pub mod reload;
pub mod scan;
pub mod state;
pub mod volumes;

/// The default provisioner name: the `pv.kubernetes.io/provisioned-by` of
/// the PVs this provisioner makes (StorageClasses still name
/// `kubernetes.io/no-provisioner`).
pub const PROVISIONER_NAME: &str = "external-storage.io/local-volume";
