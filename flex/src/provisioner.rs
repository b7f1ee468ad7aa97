//! The [`Provisioner`] implementation: turn claims into driver calls and
//! driver replies into PVs with a `flexVolume` source.
//!
//! Cluster-wide: one elected instance calls the driver for every claim of
//! its classes. Outcomes map onto the library's retry classes: "Not
//! supported" from `provision` is infeasible (retried slowly, never counted
//! against the failure threshold); every other failed call is a failure,
//! retried with backoff under the same PV name.

use std::collections::BTreeMap;

use external_storage::params::QuantityError;
use external_storage::{
    async_trait, DeleteError, PersistentVolume, ProvisionError, ProvisionOptions, Provisioned,
    Provisioner,
};
use k8s_openapi::api::core::v1::{
    FlexPersistentVolumeSource, PersistentVolumeClaim, PersistentVolumeSpec,
};

use crate::driver::{Driver, Failure};
use crate::protocol::{self, ClaimInfo};

/// PV annotation the seed's flex provisioner set; kept for compatibility.
pub const CREATED_BY_ANNOTATION: &str = "kubernetes.io/createdby";
/// Its value.
pub const CREATED_BY: &str = "flex-dynamic-provisioner";

/// Provisions through a driver executable.
pub struct Flex {
    driver: Driver,
    driver_name: String,
}

impl Flex {
    /// Volumes are made by `driver`; PVs name `driver_name` as their
    /// `flexVolume.driver`.
    pub fn new(driver: Driver, driver_name: impl Into<String>) -> Self {
        Flex {
            driver,
            driver_name: driver_name.into(),
        }
    }
}

/// The claim's storage request: as written, and in bytes (rounded up);
/// empty and 0 when the claim requests no storage.
pub fn request(claim: &PersistentVolumeClaim) -> Result<(String, u64), QuantityError> {
    Ok(external_storage::params::storage_request(claim)?.unwrap_or_default())
}

/// The request facts for the driver (pure).
pub fn claim_info(opts: &ProvisionOptions) -> Result<ClaimInfo, QuantityError> {
    let meta = &opts.claim.metadata;
    let (request, request_bytes) = request(&opts.claim)?;
    Ok(ClaimInfo {
        pv_name: opts.pv_name.clone(),
        namespace: meta.namespace.clone().unwrap_or_default(),
        name: meta.name.clone().unwrap_or_default(),
        uid: meta.uid.clone().unwrap_or_default(),
        request,
        request_bytes,
        access_modes: opts
            .claim
            .spec
            .as_ref()
            .and_then(|s| s.access_modes.clone())
            .unwrap_or_default(),
        selected_node: opts.selected_node.clone(),
        class_name: opts.storage_class.metadata.name.clone().unwrap_or_default(),
    })
}

/// The PV fragment for a volume the driver made (pure).
pub fn provisioned(driver_name: &str, options: BTreeMap<String, String>) -> Provisioned {
    let mut out = Provisioned::new(PersistentVolumeSpec {
        flex_volume: Some(FlexPersistentVolumeSource {
            driver: driver_name.to_string(),
            options: (!options.is_empty()).then_some(options),
            ..Default::default()
        }),
        ..Default::default()
    });
    out.annotations = BTreeMap::from([(CREATED_BY_ANNOTATION.to_string(), CREATED_BY.to_string())]);
    out
}

/// Why a PV is not this provisioner's to delete; nothing is deleted, and
/// the message says what the operator can do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotOurs {
    /// The PV has no `flexVolume` source: no driver made it.
    #[error(
        "PV {pv} has no flexVolume source, so no driver made it; nothing was deleted: \
         delete its storage by hand, then the PV"
    )]
    NoFlexSource {
        /// The PV.
        pv: String,
    },
    /// Another driver made it.
    #[error(
        "PV {pv} has flexVolume.driver {driver:?} but this provisioner runs --driver-name \
         {ours:?}; nothing was deleted: run a provisioner with that driver, or delete the \
         storage by hand"
    )]
    OtherDriver {
        /// The PV.
        pv: String,
        /// The driver named on the PV.
        driver: String,
        /// This provisioner's `--driver-name`.
        ours: String,
    },
}

/// What to pass to `delete` for `pv`, or why it cannot be ours (pure).
pub fn delete_request(
    pv: &PersistentVolume,
    driver_name: &str,
) -> Result<BTreeMap<String, String>, NotOurs> {
    let name = pv.metadata.name.as_deref().unwrap_or_default();
    let Some(flex) = pv.spec.as_ref().and_then(|s| s.flex_volume.as_ref()) else {
        return Err(NotOurs::NoFlexSource { pv: name.into() });
    };
    if flex.driver != driver_name {
        return Err(NotOurs::OtherDriver {
            pv: name.into(),
            driver: flex.driver.clone(),
            ours: driver_name.into(),
        });
    }
    Ok(protocol::delete_request(
        name,
        &flex.options.clone().unwrap_or_default(),
    ))
}

#[async_trait]
impl Provisioner for Flex {
    async fn provision(&self, opts: ProvisionOptions) -> Result<Provisioned, ProvisionError> {
        let info = claim_info(&opts)?;
        let params = opts.storage_class.parameters.clone().unwrap_or_default();
        let request = protocol::provision_request(&params, &info)
            .map_err(|e| ProvisionError::Infeasible(e.to_string()))?;
        match self.driver.call("provision", &opts.pv_name, &request).await {
            Ok(reply) => Ok(provisioned(&self.driver_name, reply.options)),
            Err(e) if matches!(e.failure, Failure::NotSupported(_)) => {
                Err(ProvisionError::Infeasible(e.to_string()))
            }
            Err(e) => Err(ProvisionError::Failed(e.to_string())),
        }
    }

    async fn delete(&self, pv: &PersistentVolume) -> Result<(), DeleteError> {
        let name = pv.metadata.name.as_deref().unwrap_or_default();
        let request = delete_request(pv, &self.driver_name)
            .map_err(|e| DeleteError::Failed(e.to_string()))?;
        match self.driver.call("delete", name, &request).await {
            Ok(_) => Ok(()),
            Err(e) if matches!(e.failure, Failure::NotSupported(_)) => {
                Err(DeleteError::Failed(format!(
                    "{e}; the volume's storage was not removed: delete it by hand and then the PV, \
                     or use reclaimPolicy Retain with this driver"
                )))
            }
            Err(e) => Err(DeleteError::Failed(e.to_string())),
        }
    }

    fn supports_block(&self) -> bool {
        // A flexVolume PV is always a filesystem volume.
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use external_storage::StorageClass;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn claim(request: Option<&str>) -> PersistentVolumeClaim {
        let c = external_storage::fixtures::claim("ns", "data")
            .uid("u1")
            .access_modes(&["ReadWriteMany"]);
        match request {
            Some(r) => c.request(r),
            None => c,
        }
        .build()
    }

    #[test]
    fn requests_in_bytes_round_up() {
        assert_eq!(request(&claim(Some("1Gi"))), Ok(("1Gi".into(), 1 << 30)));
        assert_eq!(request(&claim(Some("1500m"))), Ok(("1500m".into(), 2)));
        assert_eq!(request(&claim(None)), Ok((String::new(), 0)));
        assert!(request(&claim(Some("lots")))
            .unwrap_err()
            .to_string()
            .contains("lots"));
    }

    #[test]
    fn claim_info_carries_the_claim() {
        let opts = ProvisionOptions {
            storage_class: StorageClass {
                metadata: ObjectMeta {
                    name: Some("gold".into()),
                    ..Default::default()
                },
                provisioner: "p".into(),
                ..Default::default()
            },
            claim: claim(Some("2Gi")),
            pv_name: "pvc-u1".into(),
            selected_node: Some("n1".into()),
            node_hostname: None,
        };
        let i = claim_info(&opts).unwrap();
        assert_eq!(
            i,
            ClaimInfo {
                pv_name: "pvc-u1".into(),
                namespace: "ns".into(),
                name: "data".into(),
                uid: "u1".into(),
                request: "2Gi".into(),
                request_bytes: 2 << 30,
                access_modes: vec!["ReadWriteMany".into()],
                selected_node: Some("n1".into()),
                class_name: "gold".into(),
            }
        );
    }

    #[test]
    fn options_round_trip_through_the_pv() {
        let opts = BTreeMap::from([("path".to_string(), "/b/pvc-1".to_string())]);
        let p = provisioned("example.com/dir", opts.clone());
        let flex = p.spec.flex_volume.as_ref().unwrap();
        assert_eq!(flex.driver, "example.com/dir");
        assert_eq!(flex.options.as_ref(), Some(&opts));
        assert_eq!(p.annotations[CREATED_BY_ANNOTATION], CREATED_BY);
        let pv = PersistentVolume {
            metadata: ObjectMeta {
                name: Some("pvc-1".into()),
                ..Default::default()
            },
            spec: Some(p.spec),
            ..Default::default()
        };
        let req = delete_request(&pv, "example.com/dir").unwrap();
        assert_eq!(req["path"], "/b/pvc-1");
        assert_eq!(req[protocol::PV_NAME], "pvc-1");
        let e = delete_request(&pv, "other/driver").unwrap_err();
        assert!(matches!(&e, NotOurs::OtherDriver { driver, .. } if driver == "example.com/dir"));
        let e = e.to_string();
        assert!(
            e.contains("\"example.com/dir\"") && e.contains("nothing was deleted"),
            "{e}"
        );
        assert!(provisioned("d", BTreeMap::new())
            .spec
            .flex_volume
            .unwrap()
            .options
            .is_none());
    }

    #[test]
    fn a_pv_without_flex_source_is_not_deleted() {
        let pv = PersistentVolume {
            metadata: ObjectMeta {
                name: Some("x".into()),
                ..Default::default()
            },
            spec: Some(PersistentVolumeSpec::default()),
            ..Default::default()
        };
        let e = delete_request(&pv, "d").unwrap_err();
        assert_eq!(e, NotOurs::NoFlexSource { pv: "x".into() });
        assert!(e.to_string().contains("no flexVolume"), "{e}");
    }
}
