//! What a directory-backed provisioner does with a volume's data when its PV
//! is deleted: the class parameters `onDelete` and `archiveRetention`
//! (nfs-subdir-external-provisioner's and local-path-provisioner's users ask
//! for both), validated once here for every provisioner that offers them.
//!
//! The choice is made when the volume is provisioned and written on the PV
//! ([`ON_DELETE`], [`ARCHIVE_RETENTION`]): deleting reads the PV, never the
//! class, so editing or deleting a class cannot turn "archive" into
//! "delete" for volumes that already exist. A PV without the annotation
//! (made before it existed) is deleted, as it always was; a PV whose
//! annotation is damaged is refused, and nothing is deleted.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::PersistentVolume;

use crate::annotations::{ARCHIVE_RETENTION, ON_DELETE};
use crate::params::ParamError;

/// The class parameter that chooses the policy.
pub const ON_DELETE_PARAM: &str = "onDelete";
/// The class parameter that bounds an archive's life.
pub const ARCHIVE_RETENTION_PARAM: &str = "archiveRetention";
/// Both parameters, for a provisioner's list of known parameters.
pub const PARAMS: [&str; 2] = [ON_DELETE_PARAM, ARCHIVE_RETENTION_PARAM];

/// What happens to a volume's data when its PV is deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnDelete {
    /// The data is removed (the default, and the only behaviour before).
    #[default]
    Delete,
    /// The data stays where it is; the provisioner gives up its ownership
    /// record (and never deletes it later).
    Retain,
    /// The data is moved to an archive inside the provisioner's root, out of
    /// reach of new claims; with a retention, removed after it.
    Archive {
        /// How long the archive is kept; `None`: until removed by hand.
        retention: Option<Duration>,
    },
}

impl OnDelete {
    /// The policy a class's `parameters` ask for.
    pub fn from_class(params: &BTreeMap<String, String>) -> Result<Self, ParamError> {
        let retention = params
            .get(ARCHIVE_RETENTION_PARAM)
            .map(|v| parse_retention(v).map_err(|e| ParamError::new(ARCHIVE_RETENTION_PARAM, e)))
            .transpose()?;
        let policy = match params.get(ON_DELETE_PARAM).map(|v| v.trim()) {
            None | Some("delete") => OnDelete::Delete,
            Some("retain") => OnDelete::Retain,
            Some("archive") => OnDelete::Archive { retention },
            Some(other) => {
                return Err(ParamError::new(
                    ON_DELETE_PARAM,
                    format!("`{other}` is not allowed; allowed: delete, retain, archive"),
                ))
            }
        };
        if retention.is_some() && !matches!(policy, OnDelete::Archive { .. }) {
            return Err(ParamError::new(
                ARCHIVE_RETENTION_PARAM,
                "only applies with onDelete: archive; remove it or set onDelete: archive",
            ));
        }
        Ok(policy)
    }

    /// The PV annotations that record this policy (none for `Delete`, so
    /// PVs of classes without the parameter look exactly as before).
    pub fn annotations(self) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        match self {
            OnDelete::Delete => {}
            OnDelete::Retain => {
                out.insert(ON_DELETE.to_string(), "retain".to_string());
            }
            OnDelete::Archive { retention } => {
                out.insert(ON_DELETE.to_string(), "archive".to_string());
                if let Some(r) = retention {
                    out.insert(ARCHIVE_RETENTION.to_string(), format!("{}s", r.as_secs()));
                }
            }
        }
        out
    }

    /// The policy recorded on `pv`. An unknown value is an error (the
    /// caller then deletes nothing): it was edited by hand or written by a
    /// newer version.
    pub fn from_pv(pv: &PersistentVolume) -> Result<Self, DamagedPolicy> {
        let annotations = pv.metadata.annotations.as_ref();
        let get = |k: &str| annotations.and_then(|a| a.get(k)).map(|v| v.trim());
        let damaged = |annotation: &'static str, why: String| DamagedPolicy { annotation, why };
        let retention = get(ARCHIVE_RETENTION)
            .map(|v| parse_retention(v).map_err(|why| damaged(ARCHIVE_RETENTION, why)))
            .transpose()?;
        match get(ON_DELETE) {
            None | Some("delete") => Ok(OnDelete::Delete),
            Some("retain") => Ok(OnDelete::Retain),
            Some("archive") => Ok(OnDelete::Archive { retention }),
            Some(other) => Err(damaged(
                ON_DELETE,
                format!("`{other}` is not one of delete, retain, archive"),
            )),
        }
    }
}

/// A PV whose recorded policy cannot be read: nothing is deleted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("annotation {annotation}: {why}; nothing was deleted: fix or remove the annotation")]
pub struct DamagedPolicy {
    /// The annotation that is damaged.
    pub annotation: &'static str,
    /// What is wrong with its value.
    pub why: String,
}

/// A retention: a positive duration such as `168h`, `30m` or `90s`.
fn parse_retention(v: &str) -> Result<Duration, String> {
    let d = crate::args::parse_duration(v).map_err(|e| e.to_string())?;
    if d < Duration::from_secs(1) {
        return Err(format!("`{v}` is shorter than one second; use e.g. 168h"));
    }
    Ok(Duration::from_secs(d.as_secs()))
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::fixtures::parameters as class;

    fn pv(annotations: BTreeMap<String, String>) -> PersistentVolume {
        let mut pv = PersistentVolume::default();
        pv.metadata.annotations = Some(annotations);
        pv
    }

    #[test]
    fn class_parameters_table() {
        let day = Some(Duration::from_secs(86_400));
        let ok: &[(&[(&str, &str)], OnDelete)] = &[
            (&[], OnDelete::Delete),
            (&[("onDelete", "delete")], OnDelete::Delete),
            (&[("onDelete", "retain")], OnDelete::Retain),
            (
                &[("onDelete", "archive")],
                OnDelete::Archive { retention: None },
            ),
            (
                &[("onDelete", "archive"), ("archiveRetention", "24h")],
                OnDelete::Archive { retention: day },
            ),
        ];
        for (params, want) in ok {
            assert_eq!(
                OnDelete::from_class(&class(params)),
                Ok(*want),
                "{params:?}"
            );
        }
        type Bad<'a> = (&'a [(&'a str, &'a str)], &'a str, &'a str);
        let bad: &[Bad] = &[
            (
                &[("onDelete", "shred")],
                "onDelete",
                "allowed: delete, retain, archive",
            ),
            (
                &[("archiveRetention", "24h")],
                "archiveRetention",
                "only applies with onDelete: archive",
            ),
            (
                &[("onDelete", "retain"), ("archiveRetention", "24h")],
                "archiveRetention",
                "only applies",
            ),
            (
                &[("onDelete", "archive"), ("archiveRetention", "a week")],
                "archiveRetention",
                "invalid duration",
            ),
            (
                &[("onDelete", "archive"), ("archiveRetention", "0s")],
                "archiveRetention",
                "shorter than one second",
            ),
        ];
        for (params, param, why) in bad {
            let e = OnDelete::from_class(&class(params)).unwrap_err();
            assert_eq!(e.param, *param, "{params:?}");
            assert!(e.message.contains(why), "{params:?}: {e}");
        }
    }

    #[test]
    fn the_policy_round_trips_through_the_pv_and_damage_is_refused() {
        for policy in [
            OnDelete::Delete,
            OnDelete::Retain,
            OnDelete::Archive { retention: None },
            OnDelete::Archive {
                retention: Some(Duration::from_secs(604_800)),
            },
        ] {
            assert_eq!(OnDelete::from_pv(&pv(policy.annotations())), Ok(policy));
        }
        assert!(OnDelete::Delete.annotations().is_empty());
        assert_eq!(
            OnDelete::from_pv(&PersistentVolume::default()),
            Ok(OnDelete::Delete)
        );
        let e = OnDelete::from_pv(&pv(class(&[(ON_DELETE, "keep")]))).unwrap_err();
        assert_eq!(e.annotation, ON_DELETE);
        assert!(e.to_string().contains("`keep`"), "{e}");
        let e = OnDelete::from_pv(&pv(class(&[
            (ON_DELETE, "archive"),
            (ARCHIVE_RETENTION, "x"),
        ])))
        .unwrap_err();
        assert_eq!(e.annotation, ARCHIVE_RETENTION);
        assert!(e.to_string().contains("nothing was deleted"), "{e}");
    }
}
