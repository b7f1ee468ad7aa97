//! Hot reload of the configuration: the mounted ConfigMap (or file) is read
//! again before every discovery pass (the mechanics, shared with hostpath,
//! are `external_storage::reload`). A new configuration that validates is
//! put in force (new classes and discovery directories are scanned from the
//! next pass on; a changed class applies to what is discovered and cleaned
//! after it); one that does not is refused with the reason, and the last
//! good one stays in force. Only a change of the refusal is reported, so a
//! broken ConfigMap gives one event, not one per pass.
//!
//! PVs already made are never touched by a reload: a class removed from the
//! configuration keeps its PVs, which are then not cleaned (the cleaner
//! refuses a class it does not know) until the class comes back.

use std::collections::BTreeSet;
use std::path::PathBuf;

use crate::config::Config;

/// What the latest read of the configuration found (the library's, for
/// local-volume's [`Config`]).
pub type Reload = external_storage::reload::Reload<Config>;
/// Reads the configuration at a path again and compares it.
pub type Reloader = external_storage::reload::Reloader<Config>;

/// A reloader of the configuration at `path` (a YAML file, or a directory
/// with a file per key).
pub fn reloader(path: impl Into<PathBuf>) -> Reloader {
    Reloader::new(path, Config::load, summary)
}

/// Which classes were added, removed or changed (else: other settings).
pub fn summary(old: &Config, new: &Config) -> String {
    let names = |c: &Config| c.classes.keys().cloned().collect::<BTreeSet<_>>();
    let (was, is) = (names(old), names(new));
    let mut parts = Vec::new();
    let added: Vec<_> = is.difference(&was).cloned().collect();
    let removed: Vec<_> = was.difference(&is).cloned().collect();
    let changed: Vec<_> = is
        .intersection(&was)
        .filter(|n| old.classes[*n] != new.classes[*n])
        .cloned()
        .collect();
    for (what, list) in [("added", added), ("removed", removed), ("changed", changed)] {
        if !list.is_empty() {
            parts.push(format!("classes {what}: {}", list.join(", ")));
        }
    }
    if parts.is_empty() {
        "settings other than the classes changed".into()
    } else {
        parts.join("; ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(path: &std::path::Path, text: &str) {
        std::fs::write(path, text).unwrap();
    }

    #[test]
    fn changes_are_taken_and_refusals_reported_once_keeping_the_last_good() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("config.yaml");
        write(&file, "storageClassMap:\n  a:\n    hostDir: /mnt/a\n");
        let mut current = Config::load(&file).unwrap();
        let mut r = reloader(&file);
        assert!(matches!(r.check(&current), Reload::Unchanged));

        write(
            &file,
            "storageClassMap:\n  a:\n    hostDir: /mnt/a2\n  b:\n    hostDir: /mnt/b\n",
        );
        match r.check(&current) {
            Reload::Changed(new, summary) => {
                assert_eq!(summary, "classes added: b; classes changed: a");
                current = new;
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(r.check(&current), Reload::Unchanged));

        write(&file, "storageClassMap:\n  a:\n    hostDir: relative\n");
        match r.check(&current) {
            Reload::Refused(why) => assert!(why.contains("storageClassMap.a.hostDir"), "{why}"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(r.check(&current), Reload::StillRefused));
        write(&file, "not: [valid");
        assert!(matches!(r.check(&current), Reload::Refused(_)));
        // Fixed again: the same as the one in force is no change.
        write(
            &file,
            "storageClassMap:\n  a:\n    hostDir: /mnt/a2\n  b:\n    hostDir: /mnt/b\n",
        );
        assert!(matches!(r.check(&current), Reload::Unchanged));
    }
}
