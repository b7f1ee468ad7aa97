//! `external-storage`: the controller library Kubernetes external storage
//! provisioners stand on.
//!
//! A provisioner implements one trait, [`Provisioner`] (make a backend volume,
//! delete one), and calls [`run`]. The library owns everything else: watching
//! claims, PVs and StorageClasses; deciding which claims are ours (pure
//! functions in [`controller::claim`] and [`controller::volume`]); writing the
//! PV; per-object backoff and failure thresholds; events; metrics; leader
//! election (cluster-wide mode) or node-local mode; leak-proof provisioning
//! across claim deletion and restarts (see [`controller`]).
//!
//! This crate is the boundary between provisioner binaries and Kubernetes:
//! nothing above it spells an annotation or talks to the API server for the
//! provisioning protocol.
//!
//! # A complete minimal provisioner
//!
//! ```no_run
//! use external_storage::{async_trait, Args, DeleteError, PersistentVolume, ProvisionError,
//!     ProvisionOptions, Provisioned, Provisioner};
//! use k8s_openapi::api::core::v1::{HostPathVolumeSource, PersistentVolumeSpec};
//!
//! struct HostPath;
//!
//! #[async_trait]
//! impl Provisioner for HostPath {
//!     async fn provision(&self, o: ProvisionOptions) -> Result<Provisioned, ProvisionError> {
//!         let path = format!("/tmp/hostpath/{}", o.pv_name);
//!         std::fs::create_dir_all(&path).map_err(|e| ProvisionError::Failed(e.to_string()))?;
//!         Ok(Provisioned::new(PersistentVolumeSpec {
//!             host_path: Some(HostPathVolumeSource { path, type_: None }),
//!             ..Default::default()
//!         }))
//!     }
//!     async fn delete(&self, pv: &PersistentVolume) -> Result<(), DeleteError> {
//!         let name = pv.metadata.name.as_deref().unwrap_or_default();
//!         match std::fs::remove_dir_all(format!("/tmp/hostpath/{name}")) {
//!             Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(DeleteError::Failed(e.to_string())),
//!             _ => Ok(()),
//!         }
//!     }
//! }
//!
//! #[tokio::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let args: Args = external_storage::args::parse_command_line("example.com/hostpath");
//!     external_storage::run(args, HostPath).await?;
//!     Ok(())
//! }
//! ```

pub mod annotations;
pub mod args;
pub mod backoff;
pub mod controller;
pub mod events;
mod expiring;
pub mod fields;
#[cfg(any(test, feature = "test-fixtures"))]
pub mod fixtures;
pub mod http;
pub mod leader;
pub mod metrics;
pub mod node;
pub mod ondelete;
pub mod params;
pub mod process;
pub mod provisioner;
pub mod ratelimit;
pub mod reload;
pub mod text;

pub use args::{run, run_until, run_with_metrics, Args, RunError, Settings};
pub use async_trait::async_trait;
pub use controller::{ControllerError, ControllerOptions, ProvisionController};
pub use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
pub use k8s_openapi::api::storage::v1::StorageClass;
pub use leader::LeaderElection;
pub use metrics::Metrics;
/// The metrics crate of [`Metrics`], for a provisioner's own metrics
/// ([`Metrics::with_registry`]).
pub use prometheus_client;
pub use provisioner::{
    DeleteError, IntentRecords, PendingVolume, ProvisionError, ProvisionOptions, Provisioned,
    Provisioner,
};
