//! `kube-testserver`: a fake but faithful Kubernetes API server for tests.
//!
//! It serves the core, storage, coordination, events, apps and RBAC kinds
//! over plain HTTP with real resourceVersion, watch, patch and error
//! semantics, plus a PV binder and a tiny volume-aware scheduler, so that
//! kube-rs clients and `kubectl` can be exercised without a cluster.
//! See README.md for the fidelity notes.

pub mod access;
pub mod admission;
pub mod controllers;
pub mod convert;
pub mod discovery;
pub mod faults;
pub mod fields;
pub mod handlers;
pub mod objects;
pub mod openapi;
pub mod patch;
pub mod registry;
pub mod request;
mod scratch;
pub mod selectors;
pub mod server;
pub mod state;
pub mod stats;
pub mod status;
pub mod store;
pub mod validation;
pub mod watch;
pub mod wellknown;

pub use faults::{FaultKind, Faults};
pub use server::{Config, TestServer};
pub use stats::Stats;
pub use status::ApiError;
pub use store::Store;
