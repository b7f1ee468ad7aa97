//! Deserializing a provisioner's configuration with the failing field
//! named: every config error a user sees says which key is wrong
//! (`storageClassMap.fast.hostDir`, `nodePathMap[1].paths[0]`), the same
//! way in every provisioner that reads a file (local-volume, hostpath).

use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Deserializer};

/// Why a configured directory is unusable; each names the path as written
/// (the caller adds the field).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DirError {
    /// Relative: it would depend on the provisioner's working directory.
    #[error("{0:?} must be an absolute path")]
    Relative(String),
    /// Has a `.` or `..` component, which can climb out of what it seems to name.
    #[error("{0:?} must not contain `.` or `..`")]
    Dots(String),
    /// `/`: the whole host.
    #[error("`/` itself cannot be used: name a directory below it")]
    Root,
    /// One of [`SYSTEM_DIRS`], inside one, or holding one.
    #[error("{path:?} is, lies in or holds {system}, the host's own files: volumes there would be made, cleaned and deleted among them; name a directory of its own (e.g. /mnt/disks)")]
    System {
        /// The path as written.
        path: String,
        /// The system directory it overlaps.
        system: &'static str,
    },
}

/// Host directories that no volume root or discovery directory may be, lie
/// in, or hold: the kernel's (`/proc`, `/sys`), the devices (`/dev`), the
/// host's configuration (`/etc`) and the kubelet's pods and their volumes
/// (`/var/lib/kubelet`). A root that holds one would put volumes beside it,
/// and a claim-named path (hostpath's `pathPattern`) could then be one of
/// them (a namespace called `kubelet` under a root `/var/lib`).
pub const SYSTEM_DIRS: [&str; 5] = ["/proc", "/sys", "/dev", "/etc", "/var/lib/kubelet"];

/// Whether `a` and `b` are the same directory or one lies inside the
/// other (whole components: `/etcd` is not inside `/etc`).
pub fn overlaps(a: &Path, b: &Path) -> bool {
    a.starts_with(b) || b.starts_with(a)
}

/// A directory a provisioner makes, cleans or deletes volumes in (a
/// hostpath root, a local-volume discovery directory): [`absolute_dir`],
/// and clear of every one of [`SYSTEM_DIRS`].
pub fn volume_dir(s: &str) -> Result<PathBuf, DirError> {
    let p = absolute_dir(s)?;
    match SYSTEM_DIRS.iter().find(|d| overlaps(&p, Path::new(d))) {
        Some(system) => Err(DirError::System {
            path: s.to_string(),
            system,
        }),
        None => Ok(p),
    }
}

/// A directory a configuration names: absolute, without `.` or `..`, not
/// `/` itself. Returns it with repeated and trailing `/` dropped.
pub fn absolute_dir(s: &str) -> Result<PathBuf, DirError> {
    let p = Path::new(s);
    if !p.is_absolute() {
        return Err(DirError::Relative(s.to_string()));
    }
    if p.components()
        .any(|c| matches!(c, Component::ParentDir | Component::CurDir))
    {
        return Err(DirError::Dots(s.to_string()));
    }
    if p == Path::new("/") {
        return Err(DirError::Root);
    }
    Ok(p.components().collect())
}

/// [`volume_dir`]'s check of where `path` really lands on this host:
/// symlinks in it (or in the part that exists yet) resolved, so a root
/// `/mnt/x` that is a link to `/etc` is refused too. Run where the path
/// is opened; a path whose existing part cannot be resolved is refused.
pub fn resolved_volume_dir(path: &Path) -> Result<PathBuf, DirError> {
    let mut existing = path.to_path_buf();
    let mut rest = Vec::new();
    let real = loop {
        match existing.canonicalize() {
            Ok(real) => break real,
            Err(_) => match (existing.parent(), existing.file_name()) {
                (Some(parent), Some(name)) => {
                    rest.push(name.to_os_string());
                    existing = parent.to_path_buf();
                }
                _ => return Err(DirError::Relative(path.display().to_string())),
            },
        }
    };
    let full = rest.iter().rev().fold(real, |p, n| p.join(n));
    let shown = full.display().to_string();
    volume_dir(&shown).map_err(|e| match e {
        DirError::System { system, .. } => DirError::System {
            path: format!("{} (really {shown})", path.display()),
            system,
        },
        other => other,
    })
}

/// Deserializes `T` from `d`; on failure, the dotted path of the field
/// (`(top level)` for the document itself) and serde's message.
pub fn deserialize<'de, D, T>(d: D) -> Result<T, (String, String)>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    serde_path_to_error::deserialize(d).map_err(|e| {
        let path = e.path().to_string();
        let field = if path == "." {
            "(top level)".to_string()
        } else {
            path
        };
        (field, e.into_inner().to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Doc {
        list: Vec<Item>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Item {
        n: u32,
    }

    #[test]
    fn directories_are_absolute_plain_and_not_the_root() {
        assert_eq!(absolute_dir("/a//b/"), Ok(PathBuf::from("/a/b")));
        assert_eq!(absolute_dir("a/b"), Err(DirError::Relative("a/b".into())));
        assert_eq!(
            absolute_dir("/a/../b"),
            Err(DirError::Dots("/a/../b".into()))
        );
        // std drops a `.` inside a path: it names the same directory.
        assert_eq!(absolute_dir("/a/./b"), Ok(PathBuf::from("/a/b")));
        assert_eq!(absolute_dir("./b"), Err(DirError::Relative("./b".into())));
        assert_eq!(absolute_dir("/"), Err(DirError::Root));
        assert!(DirError::Root.to_string().contains("`/` itself"));
    }

    #[test]
    fn volume_dirs_keep_clear_of_the_hosts_own_directories() {
        for ok in [
            "/mnt/disks",
            "/var/lib/hostpath-provisioner",
            "/etcd",
            "/devices",
            "/var/lib/kubelet-data",
        ] {
            assert_eq!(volume_dir(ok), Ok(PathBuf::from(ok)), "{ok}");
        }
        for (bad, system) in [
            ("/proc", "/proc"),
            ("/sys/fs/cgroup", "/sys"),
            ("/dev/disk/by-id", "/dev"),
            ("/etc/", "/etc"),
            ("/var/lib/kubelet/pods", "/var/lib/kubelet"),
            // Holding one is refused too.
            ("/var/lib", "/var/lib/kubelet"),
            ("/var", "/var/lib/kubelet"),
        ] {
            let e = volume_dir(bad).unwrap_err();
            assert_eq!(
                e,
                DirError::System {
                    path: bad.into(),
                    system
                },
                "{bad}"
            );
            assert!(e.to_string().contains(system), "{e}");
        }
        assert_eq!(volume_dir("/"), Err(DirError::Root));
        assert_eq!(volume_dir("x"), Err(DirError::Relative("x".into())));
    }

    #[test]
    fn a_symlink_to_a_system_directory_is_seen_through() {
        let tmp = tempfile::tempdir().unwrap();
        let link = tmp.path().join("x");
        std::os::unix::fs::symlink("/etc", &link).unwrap();
        for p in [link.clone(), link.join("not-yet/deeper")] {
            let e = resolved_volume_dir(&p).unwrap_err();
            assert!(
                matches!(&e, DirError::System { system: "/etc", .. }),
                "{p:?}: {e}"
            );
            assert!(e.to_string().contains("really /etc"), "{e}");
        }
        let plain = tmp.path().join("data/new");
        assert!(resolved_volume_dir(&plain).is_ok());
    }

    #[test]
    fn the_failing_field_is_named() {
        let v = serde_json::json!({"list": [{"n": 1}, {"n": "x"}]});
        let (field, _) = deserialize::<_, Doc>(v).unwrap_err();
        assert_eq!(field, "list[1].n");
        let (field, _) = deserialize::<_, Doc>(serde_json::json!(3)).unwrap_err();
        assert_eq!(field, "(top level)");
    }
}
