//! Hot reload of the configuration file: it is read again every poll
//! interval (`external_storage::reload`, the same mechanics and events as
//! local-volume). A changed configuration is taken only once every root it
//! gives this node is open; a configuration that does not validate, or
//! names a root that cannot be opened, is refused with a log line and a
//! Warning event (on the ConfigMap when its name is known, else on the
//! Node), and the last good one stays in force.
//!
//! Volumes already made are never touched by a reload: a root removed from
//! the configuration keeps its volumes, which are then not deleted (their
//! ownership records cannot be checked) until the root comes back.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use external_storage::events::Events;
use external_storage::reload::{announce, Reload, Reloader};
use k8s_openapi::api::core::v1::ObjectReference;

use crate::config::{summary, Config};
use crate::roots::{Layout, Roots};

/// A reloader of the configuration file at `path`.
pub fn reloader(path: impl Into<PathBuf>) -> Reloader<Config> {
    Reloader::new(path, Config::load, summary)
}

/// One check: reads the file, and takes a changed configuration whose roots
/// all open on `node`. Returns the outcome as announced.
pub fn check(reloader: &mut Reloader<Config>, roots: &Roots, node: &str) -> Reload<Config> {
    let current = roots.current();
    match reloader.check(&current.config) {
        Reload::Changed(config, what) => match Layout::open(config.clone(), node, Some(&current)) {
            Ok(layout) => {
                roots.replace(layout);
                Reload::Changed(config, what)
            }
            Err(why) => reloader.refused(why.to_string()),
        },
        other => other,
    }
}

/// Checks every `interval`, forever, announcing each outcome on `object`.
pub async fn watch(
    mut reloader: Reloader<Config>,
    roots: Arc<Roots>,
    node: String,
    events: Events,
    object: ObjectReference,
    interval: Duration,
) {
    loop {
        tokio::time::sleep(interval).await;
        let outcome = check(&mut reloader, &roots, &node);
        announce(&events, &object, &outcome).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_root_is_opened_and_a_root_that_cannot_be_opened_refuses_the_change() {
        let tmp = tempfile::tempdir().unwrap();
        let t = tmp.path().display().to_string();
        let file = tmp.path().join("config.yaml");
        let write = |paths: &str| {
            std::fs::write(
                &file,
                format!("nodePathMap:\n- node: n1\n  paths: [{paths}]\n"),
            )
            .unwrap()
        };
        write(&format!("{t}/a"));
        let roots = Roots::new(Layout::open(Config::load(&file).unwrap(), "n1", None).unwrap());
        let mut r = reloader(&file);
        assert!(matches!(check(&mut r, &roots, "n1"), Reload::Unchanged));

        write(&format!("{t}/a, {t}/b"));
        assert!(matches!(check(&mut r, &roots, "n1"), Reload::Changed(..)));
        assert_eq!(roots.current().roots().count(), 2);
        assert!(tmp.path().join("b").is_dir());

        // A root that cannot be made (a file is in the way): refused once,
        // and the two roots stay in force.
        std::fs::write(tmp.path().join("file"), b"").unwrap();
        write(&format!("{t}/file/c"));
        match check(&mut r, &roots, "n1") {
            Reload::Refused(why) => assert!(why.contains("cannot open volume root"), "{why}"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(check(&mut r, &roots, "n1"), Reload::StillRefused));
        assert_eq!(roots.current().roots().count(), 2);

        write("relative");
        match check(&mut r, &roots, "n1") {
            Reload::Refused(why) => assert!(why.contains("nodePathMap[0].paths[0]"), "{why}"),
            other => panic!("{other:?}"),
        }
        assert_eq!(roots.current().roots().count(), 2);
    }
}
