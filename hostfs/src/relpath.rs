//! The one rule for a path below a root: plain, relative, strictly inside.
//!
//! Every path the provisioners build from claim-derived text (a rendered
//! `pathPattern`, a recorded volume path) passes [`check_relative`] before
//! any directory is opened, so `..`, an absolute path or an empty segment is
//! refused as text, before the no-follow walk of [`crate::root`] even starts.

/// A path that is not a plain relative path strictly below the root.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("path `{path}` is not allowed: {why}")]
pub struct UnsafePath {
    /// The path as given.
    pub path: String,
    /// What is wrong with it.
    pub why: &'static str,
}

/// Checks that `path` is a plain relative path strictly below the root.
pub fn check_relative(path: &str) -> Result<(), UnsafePath> {
    let bad = |why| {
        Err(UnsafePath {
            path: path.to_string(),
            why,
        })
    };
    if path.is_empty() {
        return bad("it is empty");
    }
    if path.starts_with('/') {
        return bad("it is absolute");
    }
    if path.contains('\0') {
        return bad("it contains a NUL byte");
    }
    for segment in path.split('/') {
        match segment {
            "" => return bad("it has an empty segment (`//` or a trailing `/`)"),
            "." | ".." => return bad("it has a `.` or `..` segment"),
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_relative_paths_pass() {
        for bad in [
            "", "/abs", "a//b", "a/", "./a", "a/..", "..", "a/./b", "a\0b",
        ] {
            assert!(check_relative(bad).is_err(), "{bad:?} must be rejected");
        }
        for good in ["a", "a/b", "ns/claim-1", "..a", "a..", ".hidden"] {
            assert!(check_relative(good).is_ok(), "{good:?} must be accepted");
        }
        assert_eq!(check_relative("/x").unwrap_err().why, "it is absolute");
    }
}
