//! Deserializing a provisioner's configuration with the failing field
//! named: every config error a user sees says which key is wrong
//! (`storageClassMap.fast.hostDir`, `nodePathMap[1].paths[0]`), the same
//! way in every provisioner that reads a file (local-volume, hostpath).

use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Deserializer};

/// A directory a configuration names: absolute, without `.` or `..`, not
/// `/` itself. Returns it with repeated and trailing `/` dropped; the error
/// says what is wrong with `s` (the caller adds the field).
pub fn absolute_dir(s: &str) -> Result<PathBuf, String> {
    let p = Path::new(s);
    if !p.is_absolute() {
        return Err(format!("{s:?} must be an absolute path"));
    }
    if p.components()
        .any(|c| matches!(c, Component::ParentDir | Component::CurDir))
    {
        return Err(format!("{s:?} must not contain `.` or `..`"));
    }
    if p == Path::new("/") {
        return Err("`/` itself cannot be used: name a directory below it".into());
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
        assert!(absolute_dir("a/b").unwrap_err().contains("absolute"));
        assert!(absolute_dir("/a/../b").unwrap_err().contains("`..`"));
        // std drops a `.` inside a path: it names the same directory.
        assert_eq!(absolute_dir("/a/./b"), Ok(PathBuf::from("/a/b")));
        assert!(absolute_dir("./b").is_err());
        assert!(absolute_dir("/").unwrap_err().contains("`/` itself"));
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
