//! The I/O error every root operation returns: which operation, on which
//! path below the root, and the OS error. One type, so the hostpath and nfs
//! roots report failures the same way and their events read alike.

use std::io;

/// An I/O error with the operation and the path (relative to a root) it hit.
#[derive(Debug, thiserror::Error)]
#[error("{op} `{path}`: {source}")]
pub struct OpError {
    /// What was being done (`create`, `remove ownership record`, …).
    pub op: &'static str,
    /// The path, relative to the root.
    pub path: String,
    /// The OS error.
    #[source]
    pub source: io::Error,
}

/// A `map_err` adapter: `.map_err(io_err("create", rel))`.
pub fn io_err<'a>(op: &'static str, path: &'a str) -> impl FnOnce(io::Error) -> OpError + 'a {
    move |source| OpError {
        op,
        path: path.to_string(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_operation_the_path_and_the_cause() {
        let e = io_err("chmod", "ns/c")(io::Error::from(io::ErrorKind::PermissionDenied));
        assert_eq!(e.to_string(), "chmod `ns/c`: permission denied");
        assert!(std::error::Error::source(&e).is_some());
    }
}
