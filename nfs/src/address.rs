//! Which server address goes into every PV's `nfs.server`.
//!
//! In order: `--server` (out of cluster, or a DNS name); the ClusterIP of
//! Service `SERVICE_NAME` in `POD_NAMESPACE` (stable across pod restarts and
//! moves: recommended); `POD_IP` (changes when the pod is recreated, leaving
//! existing PVs pointing nowhere: last resort, logged as such).

use k8s_openapi::api::core::v1::Service;
use kube::{Api, Client};

/// Where the address comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AddressSource {
    /// `--server`.
    Flag(String),
    /// A Service's ClusterIP: (namespace, name).
    Service(String, String),
    /// `POD_IP`.
    PodIp(String),
}

/// Why no address could be found.
#[derive(Debug, thiserror::Error)]
pub enum AddressError {
    /// Nothing configured.
    #[error("no NFS server address: set --server (NFS_SERVER), or SERVICE_NAME and POD_NAMESPACE, or POD_IP")]
    Nothing,
    /// The Service could not be read.
    #[error(
        "reading Service {namespace}/{name} for the server address (RBAC: get services): {source}"
    )]
    Api {
        /// Namespace of the Service (the provisioner's own).
        namespace: String,
        /// Name of the Service whose ClusterIP goes into every PV.
        name: String,
        /// The API error (often RBAC: get services).
        #[source]
        source: kube::Error,
    },
    /// The Service has no usable ClusterIP.
    #[error("Service {namespace}/{name} has no ClusterIP ({found:?}); use a ClusterIP Service, not a headless one")]
    NoClusterIp {
        /// Namespace of the Service.
        namespace: String,
        /// Name of the Service.
        name: String,
        /// What was there.
        found: Option<String>,
    },
}

/// Picks the source from the configured values (pure).
pub fn choose(
    flag: Option<&str>,
    service: Option<&str>,
    namespace: &str,
    pod_ip: Option<&str>,
) -> Result<AddressSource, AddressError> {
    let nonempty = |s: Option<&str>| {
        s.map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    if let Some(f) = nonempty(flag) {
        return Ok(AddressSource::Flag(f));
    }
    if let Some(s) = nonempty(service) {
        return Ok(AddressSource::Service(namespace.to_string(), s));
    }
    nonempty(pod_ip)
        .map(AddressSource::PodIp)
        .ok_or(AddressError::Nothing)
}

/// Resolves the source to an address.
pub async fn resolve(src: &AddressSource, client: &Client) -> Result<String, AddressError> {
    match src {
        AddressSource::Flag(a) => Ok(a.clone()),
        AddressSource::PodIp(ip) => {
            tracing::warn!(ip, "using POD_IP as the NFS server address: PVs break when the pod is recreated; set SERVICE_NAME");
            Ok(ip.clone())
        }
        AddressSource::Service(namespace, name) => {
            let svc = Api::<Service>::namespaced(client.clone(), namespace)
                .get(name)
                .await
                .map_err(|source| AddressError::Api {
                    namespace: namespace.clone(),
                    name: name.clone(),
                    source,
                })?;
            let ip = svc.spec.and_then(|s| s.cluster_ip);
            match ip.as_deref() {
                Some(ip) if !ip.is_empty() && ip != "None" => Ok(ip.to_string()),
                _ => Err(AddressError::NoClusterIp {
                    namespace: namespace.clone(),
                    name: name.clone(),
                    found: ip,
                }),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flag_then_service_then_pod_ip() {
        assert_eq!(
            choose(Some("nfs.example"), Some("svc"), "ns", Some("10.0.0.1")).unwrap(),
            AddressSource::Flag("nfs.example".into())
        );
        assert_eq!(
            choose(Some(""), Some("svc"), "ns", Some("10.0.0.1")).unwrap(),
            AddressSource::Service("ns".into(), "svc".into())
        );
        assert_eq!(
            choose(None, None, "ns", Some("10.0.0.1")).unwrap(),
            AddressSource::PodIp("10.0.0.1".into())
        );
        assert!(choose(None, Some(" "), "ns", None).is_err());
    }
}
