//! StorageClass parameters of the NFS provisioner, validated.
//!
//! The raw `parameters` map becomes a typed [`ClassParams`] once per claim;
//! every error names the parameter and the allowed values, so the Warning
//! event on the claim says exactly what to fix.

use std::collections::BTreeMap;

/// Every parameter a class may set.
pub const KNOWN: &[&str] = &[
    "gid",
    "gidMin",
    "gidMax",
    "rootSquash",
    "enforceCapacity",
    external_storage::ondelete::ON_DELETE_PARAM,
    external_storage::ondelete::ARCHIVE_RETENTION_PARAM,
];

/// Default lower bound of allocated GIDs (as in the Go anchor).
pub const DEFAULT_GID_MIN: u32 = 2000;
/// Default upper bound of allocated GIDs.
pub const DEFAULT_GID_MAX: u32 = i32::MAX as u32;

/// `rootSquash` when a class does not set it: on. A client's uid 0 then
/// acts as the anonymous user (65534) on the export, so a root process in
/// any pod that may mount cannot read or overwrite files only root may, nor
/// chown. The cost: workloads that run as root and chown their data (some
/// database images) must set `rootSquash: "false"` in their own class, or
/// better run as a non-root user with `gid: allocate`. docs/security.md has
/// the trade-off; with `sec=sys` it limits uid 0 only, not other uids.
pub const DEFAULT_ROOT_SQUASH: bool = true;

/// Which group owns a volume's directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GidPolicy {
    /// Owned by root, mode 0777: anyone may write.
    None,
    /// A GID unique among this server's volumes, from the range.
    Allocate {
        /// Lowest GID handed out.
        min: u32,
        /// Highest GID handed out.
        max: u32,
    },
    /// This fixed GID (shared by every volume of the class).
    Fixed(u32),
}

/// Validated parameters of one StorageClass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClassParams {
    /// Group ownership of the directory.
    pub gid: GidPolicy,
    /// Squash root (uid 0) to the anonymous user on the export.
    pub root_squash: bool,
    /// Enforce the claim's size with a project quota.
    pub enforce_capacity: bool,
    /// What happens to the directory when the PV is deleted.
    pub on_delete: external_storage::ondelete::OnDelete,
}

pub use external_storage::params::ParamError;

fn err(param: &str, message: impl Into<String>) -> ParamError {
    ParamError::new(param, message)
}

fn boolean(
    params: &BTreeMap<String, String>,
    key: &str,
    default: bool,
) -> Result<bool, ParamError> {
    match params.get(key).map(|v| v.trim()) {
        None => Ok(default),
        Some("false") => Ok(false),
        Some("true") => Ok(true),
        Some(other) => Err(err(
            key,
            format!("`{other}` is not allowed; allowed: true, false"),
        )),
    }
}

fn gid_value(key: &str, v: &str) -> Result<u32, ParamError> {
    v.trim()
        .parse::<u32>()
        .ok()
        .filter(|g| (1..=DEFAULT_GID_MAX).contains(g))
        .ok_or_else(|| {
            err(
                key,
                format!("`{v}` is not a GID between 1 and {DEFAULT_GID_MAX}"),
            )
        })
}

impl ClassParams {
    /// Parses and validates a class's `parameters`.
    pub fn parse(params: Option<&BTreeMap<String, String>>) -> Result<Self, ParamError> {
        let empty = BTreeMap::new();
        let params = params.unwrap_or(&empty);
        external_storage::params::reject_unknown(params, KNOWN)?;
        let min = params
            .get("gidMin")
            .map(|v| gid_value("gidMin", v))
            .transpose()?;
        let max = params
            .get("gidMax")
            .map(|v| gid_value("gidMax", v))
            .transpose()?;
        let gid = match params.get("gid").map(|v| v.trim()) {
            None | Some("none") => GidPolicy::None,
            Some("allocate") => {
                let (min, max) = (
                    min.unwrap_or(DEFAULT_GID_MIN),
                    max.unwrap_or(DEFAULT_GID_MAX),
                );
                if min > max {
                    return Err(err("gidMin", format!("{min} is greater than gidMax {max}")));
                }
                GidPolicy::Allocate { min, max }
            }
            Some(n) if n.chars().all(|c| c.is_ascii_digit()) => {
                GidPolicy::Fixed(gid_value("gid", n)?)
            }
            Some(other) => {
                return Err(err(
                    "gid",
                    format!("`{other}` is not allowed; allowed: none, allocate, or a GID number"),
                ))
            }
        };
        if !matches!(gid, GidPolicy::Allocate { .. }) && (min.is_some() || max.is_some()) {
            let which = if min.is_some() { "gidMin" } else { "gidMax" };
            return Err(err(which, "only meaningful with gid: allocate"));
        }
        Ok(ClassParams {
            gid,
            root_squash: boolean(params, "rootSquash", DEFAULT_ROOT_SQUASH)?,
            enforce_capacity: boolean(params, "enforceCapacity", false)?,
            on_delete: external_storage::ondelete::OnDelete::from_class(params)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use external_storage::fixtures::parameters;

    fn parse(pairs: &[(&str, &str)]) -> Result<ClassParams, ParamError> {
        ClassParams::parse(Some(&parameters(pairs)))
    }

    #[test]
    fn a_class_without_parameters_gets_every_default() {
        let defaults = ClassParams {
            gid: GidPolicy::None,
            root_squash: true,
            enforce_capacity: false,
            on_delete: external_storage::ondelete::OnDelete::Delete,
        };
        assert_eq!(ClassParams::parse(None).unwrap(), defaults);
        assert_eq!(parse(&[]).unwrap(), defaults, "an empty map is no map");
        assert!(
            !parse(&[("rootSquash", "false")]).unwrap().root_squash,
            "root is squashed unless the class opts out"
        );
    }

    #[test]
    fn valid_values() {
        let p = parse(&[("gid", "allocate"), ("rootSquash", "true")]).unwrap();
        assert_eq!(
            p.gid,
            GidPolicy::Allocate {
                min: DEFAULT_GID_MIN,
                max: DEFAULT_GID_MAX
            }
        );
        assert!(p.root_squash);
        let p = parse(&[("gid", "allocate"), ("gidMin", "5000"), ("gidMax", "5009")]).unwrap();
        assert_eq!(
            p.gid,
            GidPolicy::Allocate {
                min: 5000,
                max: 5009
            }
        );
        assert_eq!(
            parse(&[("gid", "1234")]).unwrap().gid,
            GidPolicy::Fixed(1234)
        );
        assert!(
            parse(&[("enforceCapacity", "true")])
                .unwrap()
                .enforce_capacity
        );
    }

    #[test]
    fn each_bad_value_names_its_parameter_and_the_allowed_values() {
        type Case<'a> = (&'a [(&'a str, &'a str)], &'a str, &'a str);
        let cases: &[Case] = &[
            (
                &[("gid", "many")],
                "gid",
                "allowed: none, allocate, or a GID number",
            ),
            (&[("gid", "0")], "gid", "not a GID"),
            (
                &[("gid", "allocate"), ("gidMin", "x")],
                "gidMin",
                "not a GID",
            ),
            (
                &[("gid", "allocate"), ("gidMin", "9"), ("gidMax", "8")],
                "gidMin",
                "greater than gidMax 8",
            ),
            (
                &[("gidMax", "9")],
                "gidMax",
                "only meaningful with gid: allocate",
            ),
            (
                &[("rootSquash", "yes")],
                "rootSquash",
                "allowed: true, false",
            ),
            (
                &[("enforceCapacity", "1")],
                "enforceCapacity",
                "allowed: true, false",
            ),
            (
                &[("server", "x")],
                "server",
                "unknown parameter; allowed: gid",
            ),
        ];
        for (pairs, param, expect) in cases {
            let e = parse(pairs).unwrap_err();
            assert_eq!(e.param, *param, "{pairs:?}");
            assert!(e.to_string().contains(expect), "{pairs:?}: {e}");
        }
    }
}
