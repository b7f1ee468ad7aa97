//! The driver protocol, as pure functions: the JSON the driver is called
//! with, and how its reply is judged. No processes, no I/O: every rule of
//! `flex/README.md` ("The driver protocol") that can be checked without
//! running a driver is checked and unit-tested here.
//!
//! Compatibility with the seed's flex provisioner: the request is one flat
//! JSON object of strings (StorageClass parameters plus
//! `kubernetes.io/pvOrVolumeName`, `requestBytes`, `requestMiB`,
//! `requestGiB`); delete gets the PV's `flexVolume.options` plus
//! `kubernetes.io/pvOrVolumeName`; the reply is `{"status": "Success" |
//! "Failure" | "Not supported", "message": ...}`. Additions are the claim
//! keys below and the reply's `options`.

use std::collections::BTreeMap;

use serde_json::Value;

/// The PV name (seed and FlexVolume key); the same on every retry.
pub const PV_NAME: &str = "kubernetes.io/pvOrVolumeName";
/// The claim's storage request in bytes, rounded up (seed key).
pub const REQUEST_BYTES: &str = "requestBytes";
/// The request in MiB, rounded up (seed key).
pub const REQUEST_MIB: &str = "requestMiB";
/// The request in GiB, rounded up (seed key).
pub const REQUEST_GIB: &str = "requestGiB";
/// The request as the claim spells it, e.g. `1Gi`.
pub const STORAGE_REQUEST: &str = "kubernetes.io/storageRequest";
/// The claim's namespace.
pub const PVC_NAMESPACE: &str = "kubernetes.io/pvc.namespace";
/// The claim's name.
pub const PVC_NAME: &str = "kubernetes.io/pvc.name";
/// The claim's UID.
pub const PVC_UID: &str = "kubernetes.io/pvc.uid";
/// The claim's access modes, comma-separated (e.g. `ReadWriteOnce`).
pub const ACCESS_MODES: &str = "kubernetes.io/accessModes";
/// The selected node of a `WaitForFirstConsumer` claim; empty otherwise.
pub const SELECTED_NODE: &str = "kubernetes.io/selectedNode";
/// The StorageClass name.
pub const STORAGE_CLASS: &str = "kubernetes.io/storageClass";

/// Keys the provisioner sets itself: a StorageClass parameter or a returned
/// option with one of these names is rejected instead of silently winning
/// or losing.
pub const RESERVED: [&str; 11] = [
    PV_NAME,
    REQUEST_BYTES,
    REQUEST_MIB,
    REQUEST_GIB,
    STORAGE_REQUEST,
    PVC_NAMESPACE,
    PVC_NAME,
    PVC_UID,
    ACCESS_MODES,
    SELECTED_NODE,
    STORAGE_CLASS,
];

/// What a provision request is made of (taken from the claim and class).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClaimInfo {
    /// The PV name (`pvc-<claim uid>`).
    pub pv_name: String,
    /// Claim namespace.
    pub namespace: String,
    /// Claim name.
    pub name: String,
    /// Claim UID.
    pub uid: String,
    /// The storage request as written (`1Gi`); empty if none.
    pub request: String,
    /// The request in bytes, rounded up; 0 if none.
    pub request_bytes: u64,
    /// Access modes.
    pub access_modes: Vec<String>,
    /// Selected node, if any.
    pub selected_node: Option<String>,
    /// StorageClass name.
    pub class_name: String,
}

/// A request that cannot be built (the StorageClass is wrong).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// A class parameter uses a key the provisioner sets.
    #[error(
        "StorageClass parameter `{0}` is reserved: the flex provisioner sets it for the driver; \
         rename the parameter (reserved: {reserved})",
        reserved = RESERVED.join(", ")
    )]
    ReservedParameter(String),
}

fn round_up(bytes: u64, unit: u64) -> u64 {
    bytes.div_ceil(unit)
}

/// The JSON object for `<driver> provision <json>`: the class parameters
/// plus the reserved keys.
pub fn provision_request(
    parameters: &BTreeMap<String, String>,
    claim: &ClaimInfo,
) -> Result<BTreeMap<String, String>, RequestError> {
    if let Some(k) = parameters.keys().find(|k| RESERVED.contains(&k.as_str())) {
        return Err(RequestError::ReservedParameter(k.clone()));
    }
    let mut req = parameters.clone();
    let mut set = |k: &str, v: String| {
        req.insert(k.to_string(), v);
    };
    set(PV_NAME, claim.pv_name.clone());
    set(REQUEST_BYTES, claim.request_bytes.to_string());
    set(
        REQUEST_MIB,
        round_up(claim.request_bytes, 1 << 20).to_string(),
    );
    set(
        REQUEST_GIB,
        round_up(claim.request_bytes, 1 << 30).to_string(),
    );
    set(STORAGE_REQUEST, claim.request.clone());
    set(PVC_NAMESPACE, claim.namespace.clone());
    set(PVC_NAME, claim.name.clone());
    set(PVC_UID, claim.uid.clone());
    set(ACCESS_MODES, claim.access_modes.join(","));
    set(
        SELECTED_NODE,
        claim.selected_node.clone().unwrap_or_default(),
    );
    set(STORAGE_CLASS, claim.class_name.clone());
    Ok(req)
}

/// The JSON object for `<driver> delete <json>`: the PV's
/// `flexVolume.options` plus the PV name (which always wins).
pub fn delete_request(
    pv_name: &str,
    options: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let mut req = options.clone();
    req.insert(PV_NAME.to_string(), pv_name.to_string());
    req
}

/// The `status` of a reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// `"Success"`.
    Success,
    /// `"Failure"`.
    Failure,
    /// `"Not supported"`.
    NotSupported,
}

impl Status {
    /// The protocol spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Success => "Success",
            Status::Failure => "Failure",
            Status::NotSupported => "Not supported",
        }
    }
}

/// A well-formed driver reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    /// The status.
    pub status: Status,
    /// `message`, empty if absent.
    pub message: String,
    /// `options` (provision only), empty if absent.
    pub options: BTreeMap<String, String>,
}

/// Why stdout is not a reply.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BadReply {
    /// Nothing (or only whitespace) was printed.
    #[error("stdout is empty")]
    Empty,
    /// Not exactly one JSON value.
    #[error("stdout is not one JSON object ({0})")]
    NotJson(String),
    /// Valid JSON, but not an object.
    #[error("stdout is JSON but not an object")]
    NotAnObject,
    /// No `status` string.
    #[error("the reply has no \"status\" string")]
    MissingStatus,
    /// A status other than the three of the protocol.
    #[error("unknown status {0:?} (allowed: \"Success\", \"Failure\", \"Not supported\")")]
    UnknownStatus(String),
    /// `message` is not a string.
    #[error("\"message\" is not a string")]
    BadMessage,
    /// `options` is not an object of strings.
    #[error("\"options\" must be an object of string values ({0})")]
    BadOptions(String),
    /// `options` uses a key the provisioner sets.
    #[error("\"options\" key {0:?} is reserved for the provisioner")]
    ReservedOption(String),
}

/// Parse the driver's stdout: exactly one JSON object (surrounding
/// whitespace allowed). Unknown fields (e.g. FlexVolume `capabilities`) are
/// ignored.
pub fn parse_reply(stdout: &[u8]) -> Result<Reply, BadReply> {
    if stdout.iter().all(u8::is_ascii_whitespace) {
        return Err(BadReply::Empty);
    }
    let v: Value = serde_json::from_slice(stdout).map_err(|e| BadReply::NotJson(e.to_string()))?;
    let Value::Object(obj) = v else {
        return Err(BadReply::NotAnObject);
    };
    let status = match obj.get("status") {
        Some(Value::String(s)) => match s.as_str() {
            "Success" => Status::Success,
            "Failure" => Status::Failure,
            "Not supported" => Status::NotSupported,
            other => return Err(BadReply::UnknownStatus(other.to_string())),
        },
        _ => return Err(BadReply::MissingStatus),
    };
    let message = match obj.get("message") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(_) => return Err(BadReply::BadMessage),
    };
    let mut options = BTreeMap::new();
    match obj.get("options") {
        None | Some(Value::Null) => {}
        Some(Value::Object(o)) => {
            for (k, v) in o {
                let Value::String(s) = v else {
                    return Err(BadReply::BadOptions(format!("{k:?} is {v}")));
                };
                if RESERVED.contains(&k.as_str()) {
                    return Err(BadReply::ReservedOption(k.clone()));
                }
                options.insert(k.clone(), s.clone());
            }
        }
        Some(other) => return Err(BadReply::BadOptions(format!("got {other}"))),
    }
    Ok(Reply {
        status,
        message,
        options,
    })
}

/// Bounded excerpts of driver output, for messages and Events.
pub use external_storage::text::{head, tail};

#[cfg(test)]
mod tests {
    use super::*;

    fn info() -> ClaimInfo {
        ClaimInfo {
            pv_name: "pvc-1".into(),
            namespace: "ns".into(),
            name: "data".into(),
            uid: "1".into(),
            request: "1500Mi".into(),
            request_bytes: 1500 << 20,
            access_modes: vec!["ReadWriteOnce".into(), "ReadOnlyMany".into()],
            selected_node: Some("n1".into()),
            class_name: "flex".into(),
        }
    }

    #[test]
    fn provision_request_is_the_seed_map_plus_claim_keys() {
        let params = BTreeMap::from([("baseDir".to_string(), "/b".to_string())]);
        let r = provision_request(&params, &info()).unwrap();
        assert_eq!(r["baseDir"], "/b");
        assert_eq!(r["kubernetes.io/pvOrVolumeName"], "pvc-1");
        assert_eq!(r["requestBytes"], (1500u64 << 20).to_string());
        assert_eq!(r["requestMiB"], "1500");
        assert_eq!(r["requestGiB"], "2", "rounded up");
        assert_eq!(r[STORAGE_REQUEST], "1500Mi");
        assert_eq!(r[PVC_NAMESPACE], "ns");
        assert_eq!(r[PVC_NAME], "data");
        assert_eq!(r[PVC_UID], "1");
        assert_eq!(r[ACCESS_MODES], "ReadWriteOnce,ReadOnlyMany");
        assert_eq!(r[SELECTED_NODE], "n1");
        assert_eq!(r[STORAGE_CLASS], "flex");
        assert_eq!(r.len(), 12);
        // flat map of strings, keys sorted: what drivers parse
        let json = serde_json::to_string(&r).unwrap();
        assert!(json.starts_with(r#"{"baseDir":"/b","kubernetes.io/accessModes":"#));
    }

    #[test]
    fn no_request_and_no_node_are_zero_and_empty() {
        let c = ClaimInfo {
            request: String::new(),
            request_bytes: 0,
            selected_node: None,
            ..info()
        };
        let r = provision_request(&BTreeMap::new(), &c).unwrap();
        assert_eq!(r[REQUEST_BYTES], "0");
        assert_eq!(r[REQUEST_GIB], "0");
        assert_eq!(r[SELECTED_NODE], "");
        let c = ClaimInfo {
            request_bytes: 1,
            ..c
        };
        let r = provision_request(&BTreeMap::new(), &c).unwrap();
        assert_eq!(
            (r[REQUEST_MIB].as_str(), r[REQUEST_GIB].as_str()),
            ("1", "1")
        );
    }

    #[test]
    fn reserved_parameters_are_rejected_by_name() {
        for key in RESERVED {
            let params = BTreeMap::from([(key.to_string(), "x".to_string())]);
            let e = provision_request(&params, &info()).unwrap_err();
            assert_eq!(e, RequestError::ReservedParameter(key.to_string()));
            assert!(
                e.to_string().contains(&format!("`{key}` is reserved")),
                "{e}"
            );
        }
    }

    #[test]
    fn delete_request_is_options_plus_the_pv_name() {
        let opts = BTreeMap::from([
            ("path".to_string(), "/b/pvc-1".to_string()),
            (PV_NAME.to_string(), "spoofed".to_string()),
        ]);
        let r = delete_request("pvc-1", &opts);
        assert_eq!(r["path"], "/b/pvc-1");
        assert_eq!(r[PV_NAME], "pvc-1");
        assert_eq!(r.len(), 2);
    }

    #[test]
    fn replies() {
        let r = parse_reply(
            br#" {"status":"Success","message":"ok","options":{"path":"/x"},"capabilities":{"attach":false}}
"#,
        )
        .unwrap();
        assert_eq!(r.status, Status::Success);
        assert_eq!(r.message, "ok");
        assert_eq!(r.options["path"], "/x");
        let r = parse_reply(br#"{"status":"Not supported"}"#).unwrap();
        assert_eq!((r.status, r.message.as_str()), (Status::NotSupported, ""));
        assert!(r.options.is_empty());
        let r = parse_reply(br#"{"status":"Failure","message":"full","options":null}"#).unwrap();
        assert_eq!(r.status, Status::Failure);
    }

    #[test]
    fn bad_replies_say_what_is_wrong() {
        let bad = |s: &[u8]| parse_reply(s).unwrap_err();
        assert_eq!(bad(b""), BadReply::Empty);
        assert_eq!(bad(b" \n"), BadReply::Empty);
        assert!(matches!(bad(b"hello"), BadReply::NotJson(_)));
        assert!(matches!(
            bad(br#"hello {"status":"Success"}"#),
            BadReply::NotJson(_)
        ));
        assert!(matches!(
            bad(br#"{"status":"Success"} {"status":"Success"}"#),
            BadReply::NotJson(_)
        ));
        assert_eq!(bad(b"[1]"), BadReply::NotAnObject);
        assert_eq!(bad(b"{}"), BadReply::MissingStatus);
        assert_eq!(bad(br#"{"status":1}"#), BadReply::MissingStatus);
        assert_eq!(
            bad(br#"{"status":"success"}"#),
            BadReply::UnknownStatus("success".into())
        );
        assert_eq!(
            bad(br#"{"status":"Success","message":3}"#),
            BadReply::BadMessage
        );
        assert!(matches!(
            bad(br#"{"status":"Success","options":{"size":3}}"#),
            BadReply::BadOptions(_)
        ));
        assert!(matches!(
            bad(br#"{"status":"Success","options":"x"}"#),
            BadReply::BadOptions(_)
        ));
        assert_eq!(
            bad(br#"{"status":"Success","options":{"kubernetes.io/pvOrVolumeName":"x"}}"#),
            BadReply::ReservedOption(PV_NAME.into())
        );
    }
}
