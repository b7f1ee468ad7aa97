//! StorageClass parameters of the hostpath provisioner, validated.
//!
//! Two stages, as everywhere in this project: the raw `parameters` map of the
//! class is turned into a typed [`ClassParams`] once per claim; every error
//! names the parameter and what is allowed, so the Warning event on the claim
//! tells the operator exactly what to fix.

use std::collections::BTreeMap;

use external_storage::ondelete::OnDelete;

use crate::pattern::{PathPattern, DEFAULT_PATTERN};
pub use hostfs::root::Owner;

/// The largest user or group ID a class may name: what a pod's
/// `runAsUser`/`runAsGroup`/`fsGroup` may be (the API server refuses more).
pub const MAX_ID: u32 = 2_147_483_647;

/// A `uid`/`gid` value: a decimal number from 0 to [`MAX_ID`].
fn id_value(param: &str, v: &str) -> Result<u32, ParamError> {
    v.parse::<u32>()
        .ok()
        .filter(|id| *id <= MAX_ID && v.bytes().all(|b| b.is_ascii_digit()))
        .ok_or_else(|| {
            err(
                param,
                format!("`{v}` is not a numeric ID from 0 to {MAX_ID}; names are not resolved"),
            )
        })
}

/// Every parameter a class may set.
pub const KNOWN: &[&str] = &[
    "pathPattern",
    "allowSlashInValues",
    "volumeType",
    "mode",
    "uid",
    "gid",
    "enforceCapacity",
    external_storage::ondelete::ON_DELETE_PARAM,
    external_storage::ondelete::ARCHIVE_RETENTION_PARAM,
];

/// How the PV refers to the directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VolumeType {
    /// `hostPath` source (type DirectoryOrCreate is not used: the directory exists) with node affinity.
    HostPath,
    /// `local` source with node affinity (the scheduler-aware kind).
    Local,
}

/// Validated parameters of one StorageClass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClassParams {
    /// Where the directory goes, relative to the root.
    pub path_pattern: PathPattern,
    /// The PV source kind.
    pub volume_type: VolumeType,
    /// Permission bits of the claim's directory: `mode`, else 0770 when
    /// `uid` or `gid` is set (the owner needs no 0777), else 0777.
    pub mode: u32,
    /// Who the directory belongs to (`uid`, `gid`); unset: root.
    pub owner: Owner,
    /// Whether to enforce the requested size with a project quota.
    pub enforce_capacity: bool,
    /// What happens to the directory when the PV is deleted.
    pub on_delete: OnDelete,
}

pub use external_storage::params::ParamError;

fn err(param: &str, message: impl Into<String>) -> ParamError {
    ParamError::new(param, message)
}

impl ClassParams {
    /// Parses and validates a class's `parameters`.
    pub fn parse(params: Option<&BTreeMap<String, String>>) -> Result<Self, ParamError> {
        let empty = BTreeMap::new();
        let params = params.unwrap_or(&empty);
        external_storage::params::reject_unknown(params, KNOWN)?;
        let get = |k: &str| params.get(k).map(|v| v.trim());
        let allow_slash = match get("allowSlashInValues") {
            None | Some("false") => false,
            Some("true") => true,
            Some(other) => {
                return Err(err(
                    "allowSlashInValues",
                    format!("`{other}` is not allowed; allowed: true, false"),
                ))
            }
        };
        let path_pattern = PathPattern::parse(get("pathPattern").unwrap_or(DEFAULT_PATTERN))
            .map_err(|e| err("pathPattern", e.to_string()))?
            .allow_slash_in_values(allow_slash);
        let volume_type = match get("volumeType") {
            None | Some("hostPath") => VolumeType::HostPath,
            Some("local") => VolumeType::Local,
            Some(other) => {
                return Err(err(
                    "volumeType",
                    format!("`{other}` is not allowed; allowed: hostPath, local"),
                ))
            }
        };
        let owner = Owner {
            uid: get("uid").map(|v| id_value("uid", v)).transpose()?,
            gid: get("gid").map(|v| id_value("gid", v)).transpose()?,
        };
        let mode = match get("mode") {
            None if owner != Owner::default() => 0o770,
            None => 0o777,
            Some(m) => u32::from_str_radix(m, 8)
                .ok()
                .filter(|m| *m <= 0o7777)
                .ok_or_else(|| {
                    err(
                        "mode",
                        format!(
                            "`{m}` is not an octal permission between 0000 and 7777, e.g. 0770"
                        ),
                    )
                })?,
        };
        let enforce_capacity = match get("enforceCapacity") {
            None | Some("false") => false,
            Some("true") => true,
            Some(other) => {
                return Err(err(
                    "enforceCapacity",
                    format!("`{other}` is not allowed; allowed: true, false"),
                ))
            }
        };
        Ok(ClassParams {
            path_pattern,
            volume_type,
            mode,
            owner,
            enforce_capacity,
            on_delete: OnDelete::from_class(params)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use external_storage::fixtures::parameters;

    #[test]
    fn defaults() {
        let p = ClassParams::parse(None).unwrap();
        assert_eq!(p.volume_type, VolumeType::HostPath);
        assert_eq!(p.mode, 0o777);
        assert_eq!(p.owner, Owner::default());
        assert!(!p.enforce_capacity);
        assert_eq!(p.on_delete, OnDelete::Delete);
        assert_eq!(p.path_pattern, PathPattern::parse(DEFAULT_PATTERN).unwrap());
    }

    #[test]
    fn valid_values() {
        let class = parameters(&[
            ("volumeType", "local"),
            ("mode", "0750"),
            ("enforceCapacity", "true"),
            ("pathPattern", "{{ .PVC.Namespace }}/{{ .PVC.Name }}"),
            ("onDelete", "archive"),
            ("archiveRetention", "168h"),
        ]);
        let p = ClassParams::parse(Some(&class)).unwrap();
        assert_eq!(
            p.on_delete,
            OnDelete::Archive {
                retention: Some(std::time::Duration::from_secs(168 * 3600))
            }
        );
        assert_eq!(p.volume_type, VolumeType::Local);
        assert_eq!(p.mode, 0o750);
        assert!(p.enforce_capacity);
    }

    #[test]
    fn an_owner_makes_0770_the_default_mode_and_an_explicit_mode_wins() {
        let p = ClassParams::parse(Some(&parameters(&[("uid", "1000"), ("gid", "3000")]))).unwrap();
        assert_eq!(
            p.owner,
            Owner {
                uid: Some(1000),
                gid: Some(3000)
            }
        );
        assert_eq!(p.mode, 0o770);
        let p = ClassParams::parse(Some(&parameters(&[("gid", "0"), ("mode", "2775")]))).unwrap();
        assert_eq!(
            p.owner,
            Owner {
                uid: None,
                gid: Some(0)
            }
        );
        assert_eq!(p.mode, 0o2775);
        let p = ClassParams::parse(Some(&parameters(&[("uid", "2147483647")]))).unwrap();
        assert_eq!(p.owner.uid, Some(MAX_ID));
    }

    #[test]
    fn each_bad_value_names_its_parameter_and_the_allowed_values() {
        let cases: &[(&str, &str, &str)] = &[
            ("volumeType", "nfs", "allowed: hostPath, local"),
            ("mode", "999", "octal permission"),
            ("mode", "17777", "octal permission"),
            ("uid", "www-data", "not a numeric ID from 0 to 2147483647"),
            ("uid", "-1", "not a numeric ID"),
            ("uid", "+5", "not a numeric ID"),
            ("uid", "2147483648", "not a numeric ID"),
            ("gid", "4294967295", "not a numeric ID"),
            ("gid", "", "not a numeric ID"),
            ("gid", "1e3", "not a numeric ID"),
            ("enforceCapacity", "yes", "allowed: true, false"),
            ("allowSlashInValues", "1", "allowed: true, false"),
            ("onDelete", "wipe", "allowed: delete, retain, archive"),
            (
                "archiveRetention",
                "1h",
                "only applies with onDelete: archive",
            ),
            ("pathPattern", "{{ .Secret }}", "unknown field"),
            ("node", "n1", "unknown parameter"),
            ("size", "1", "unknown parameter; allowed: pathPattern"),
        ];
        for (param, value, expect) in cases {
            let e = ClassParams::parse(Some(&parameters(&[(param, value)]))).unwrap_err();
            assert_eq!(e.param, *param);
            assert!(e.to_string().contains(expect), "{param}={value}: {e}");
        }
    }
}
