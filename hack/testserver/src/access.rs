//! Who called what: every API request as (user, verb, API group, resource
//! or `resource/subresource`), the user being the bearer token of the
//! request (a kubeconfig from [`TestServer::kubeconfig_as`]).
//!
//! The test server authorizes nothing, so a provisioner whose RBAC manifest
//! lacks a verb passes every local test and fails on a real cluster. Tests
//! run the binary under its own user and compare its calls with the rules
//! of its `deploy/<x>/` manifests (`e2e_support::assert_rbac_allows`).
//!
//! [`TestServer::kubeconfig_as`]: crate::server::TestServer::kubeconfig_as

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

/// One kind of API call, as RBAC sees it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Access {
    /// Bearer token of the request; empty without one.
    pub user: String,
    /// Kubernetes verb: get, list, watch, create, update, patch, delete,
    /// deletecollection.
    pub verb: String,
    /// API group; empty for the core group.
    pub group: String,
    /// Plural resource, with `/subresource` when there is one.
    pub resource: String,
}

/// The distinct calls seen so far.
#[derive(Clone, Default)]
pub struct AccessLog(Arc<Mutex<BTreeSet<Access>>>);

impl AccessLog {
    /// Records one call.
    pub fn record(&self, access: Access) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(access);
    }

    /// The distinct calls `user` made, sorted.
    pub fn by_user(&self, user: &str) -> Vec<Access> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|a| a.user == user)
            .cloned()
            .collect()
    }
}

/// The user of a request: its bearer token, or empty.
pub fn user_of(headers: &axum::http::HeaderMap) -> String {
    headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default()
        .trim()
        .to_string()
}
