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
    fn the_failing_field_is_named() {
        let v = serde_json::json!({"list": [{"n": 1}, {"n": "x"}]});
        let (field, _) = deserialize::<_, Doc>(v).unwrap_err();
        assert_eq!(field, "list[1].n");
        let (field, _) = deserialize::<_, Doc>(serde_json::json!(3)).unwrap_err();
        assert_eq!(field, "(top level)");
    }
}
