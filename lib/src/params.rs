//! Helpers every provisioner needs to read a claim and its StorageClass:
//! the storage request in bytes, and StorageClass parameter errors worded
//! the same way everywhere ("StorageClass parameter `x`: ...").
//!
//! They live here so that each provisioner validates its own parameters but
//! nobody parses quantities or words parameter errors twice.

use std::collections::BTreeMap;
use std::fmt;

use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube_quantity::ParsedQuantity;

/// A StorageClass parameter that is unknown or has a bad value. Its message
/// names the parameter and what is allowed, so it can go into a Warning event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamError {
    /// The parameter's name.
    pub param: String,
    /// What is wrong and what is allowed.
    pub message: String,
}

impl ParamError {
    /// An error about `param`.
    pub fn new(param: &str, message: impl Into<String>) -> Self {
        ParamError {
            param: param.to_string(),
            message: message.into(),
        }
    }
}

impl fmt::Display for ParamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "StorageClass parameter `{}`: {}",
            self.param, self.message
        )
    }
}

impl std::error::Error for ParamError {}

/// Fails on the first parameter that is not in `known`, listing the allowed ones.
pub fn reject_unknown(params: &BTreeMap<String, String>, known: &[&str]) -> Result<(), ParamError> {
    match params.keys().find(|k| !known.contains(&k.as_str())) {
        Some(unknown) => Err(ParamError::new(
            unknown,
            format!("unknown parameter; allowed: {}", known.join(", ")),
        )),
        None => Ok(()),
    }
}

/// A claim a provisioner cannot serve as it is written; the message says
/// what to change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnsupportedClaim {
    /// `spec.selector`: a dynamic provisioner makes a new volume, it has no
    /// existing ones to choose among by label.
    #[error("claims with a selector are not supported: remove spec.selector")]
    Selector,
    /// An access mode the volume type cannot give.
    #[error("access mode {mode} is not supported: {why}")]
    AccessMode {
        /// The mode the claim asks for.
        mode: String,
        /// Why not, and which modes to use instead.
        why: &'static str,
    },
}

/// Refuses a claim with a `spec.selector` (see [`UnsupportedClaim::Selector`]).
pub fn reject_selector(claim: &PersistentVolumeClaim) -> Result<(), UnsupportedClaim> {
    match claim.spec.as_ref().and_then(|s| s.selector.as_ref()) {
        Some(_) => Err(UnsupportedClaim::Selector),
        None => Ok(()),
    }
}

/// A storage quantity that cannot be a size in bytes; each names the
/// quantity as written, so the message can go into a Warning as it is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuantityError {
    /// Not in Kubernetes' quantity syntax.
    #[error("storage quantity {quantity:?} is not a quantity: {why}")]
    NotAQuantity {
        /// The quantity as written.
        quantity: String,
        /// The parser's explanation.
        why: String,
    },
    /// Negative, or more bytes than 64 bits hold.
    #[error("storage quantity {0:?} is out of range")]
    OutOfRange(String),
}

/// The claim's `resources.requests.storage`: as written, and in bytes
/// (fractions rounded up). `None` when the claim requests no storage.
pub fn storage_request(
    claim: &PersistentVolumeClaim,
) -> Result<Option<(String, u64)>, QuantityError> {
    let Some(q) = claim
        .spec
        .as_ref()
        .and_then(|s| s.resources.as_ref())
        .and_then(|r| r.requests.as_ref())
        .and_then(|r| r.get("storage"))
    else {
        return Ok(None);
    };
    Ok(Some((q.0.clone(), quantity_bytes(q)?)))
}

/// A storage quantity in bytes, fractions rounded up (a request is a minimum).
pub fn quantity_bytes(q: &Quantity) -> Result<u64, QuantityError> {
    let parsed: ParsedQuantity =
        q.clone()
            .try_into()
            .map_err(
                |e: kube_quantity::ParseQuantityError| QuantityError::NotAQuantity {
                    quantity: q.0.clone(),
                    why: e.to_string(),
                },
            )?;
    // `to_bytes_u64` truncates a fraction ("1.5" → 1). Below 2^53 the f64
    // value is exact enough to tell.
    let exact = parsed.to_bytes_f64().filter(|f| f.is_finite() && *f >= 0.0);
    match (parsed.to_bytes_u64(), exact) {
        (Some(b), Some(f)) if f < (1u64 << 53) as f64 && f > b as f64 => Ok(b + 1),
        (Some(b), _) => Ok(b),
        (None, Some(f)) if f < u64::MAX as f64 => Ok(f.ceil() as u64),
        _ => Err(QuantityError::OutOfRange(q.0.clone())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::claim;

    #[test]
    fn requests_in_bytes() {
        let bytes = |q: &str| storage_request(&claim("ns", "c").request(q).build());
        assert_eq!(bytes("1Gi"), Ok(Some(("1Gi".into(), 1 << 30))));
        assert_eq!(bytes("500M"), Ok(Some(("500M".into(), 500_000_000))));
        assert_eq!(
            bytes("1.5"),
            Ok(Some(("1.5".into(), 2))),
            "fractions round up"
        );
        assert!(matches!(
            bytes("lots"),
            Err(QuantityError::NotAQuantity { quantity, .. }) if quantity == "lots"
        ));
        assert_eq!(
            bytes("-1Gi"),
            Err(QuantityError::OutOfRange("-1Gi".into())),
            "a negative size is no size"
        );
        assert_eq!(storage_request(&claim("ns", "c").build()), Ok(None));
    }

    #[test]
    fn unknown_parameters_are_named_with_the_allowed_ones() {
        let params = BTreeMap::from([("mode".to_string(), "1".to_string())]);
        assert!(reject_unknown(&params, &["mode"]).is_ok());
        let e = reject_unknown(&params, &["a", "b"]).unwrap_err();
        assert_eq!(e.param, "mode");
        assert_eq!(
            e.to_string(),
            "StorageClass parameter `mode`: unknown parameter; allowed: a, b"
        );
    }
}
