//! The labels this provisioner puts on its PVs, named once: the PV
//! builder sets them, the config refuses user labels that collide with
//! them, and discovery and cleaning select by them.

/// PV label naming the node whose instance owns the PV. Each instance
/// watches only the PVs carrying its own value, and cleans only those.
pub const NODE_LABEL: &str = "local-volume.external-storage.io/node";
