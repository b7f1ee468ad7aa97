//! The flex provisioner: a dynamic provisioner whose backend is any
//! executable in the FlexVolume style, so a storage team can plug in a shell
//! script or a binary without writing a controller.
//!
//! Modules, from the outside in: [`provisioner`] implements the library's
//! trait (claims in, PVs with a `flexVolume` source out); [`driver`] runs the
//! executable (timeouts, process groups, bounded output) and classifies each
//! call into one distinct outcome; [`protocol`] is the wire format, pure and
//! documented in `flex/README.md`.

pub mod driver;
pub mod protocol;
pub mod provisioner;

/// The default provisioner name (StorageClass `provisioner`).
pub const PROVISIONER_NAME: &str = "external-storage.io/flex";
