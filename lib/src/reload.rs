//! Hot reload of a provisioner's configuration file, shared by every
//! provisioner that has one (local-volume, hostpath), so that "a new
//! configuration that validates is taken, one that does not is refused with
//! the reason and the last good one stays in force" means the same thing
//! everywhere, with the same log lines and the same event reasons.
//!
//! The file is read again on every check (a poll of its content, not of its
//! modification time): a ConfigMap mounted as a volume is updated by the
//! kubelet with an atomic symlink swap, which a content read always sees and
//! an inode watch can miss. Only a change of the refusal is reported, so a
//! broken ConfigMap gives one event, not one per check.

use std::fmt::Display;
use std::path::{Path, PathBuf};

use crate::events::Events;
use k8s_openapi::api::core::v1::ObjectReference;

/// The event reason of a configuration put in force by a reload.
pub const RELOADED_REASON: &str = "ConfigReloaded";
/// The event reason of a new configuration refused (the old one stays).
pub const REFUSED_REASON: &str = "ConfigRefused";

/// What the latest read of the configuration found.
#[derive(Debug)]
pub enum Reload<C> {
    /// The same configuration as the one in force.
    Unchanged,
    /// A different, valid configuration, and what changed (for the event).
    Changed(C, String),
    /// A configuration that does not validate, first seen now: why.
    Refused(String),
    /// The same refusal as last time (not reported again).
    StillRefused,
}

/// Reads a configuration to a `C`, or says why it cannot be used.
pub type Loader<C> = Box<dyn Fn(&Path) -> Result<C, String> + Send + Sync>;
/// Describes, for the event, what differs between two configurations.
pub type Summarizer<C> = Box<dyn Fn(&C, &C) -> String + Send + Sync>;

/// Reads the configuration at a path again and compares it.
pub struct Reloader<C> {
    path: PathBuf,
    load: Loader<C>,
    summary: Summarizer<C>,
    last_refusal: Option<String>,
}

impl<C> std::fmt::Debug for Reloader<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reloader")
            .field("path", &self.path)
            .field("last_refusal", &self.last_refusal)
            .finish_non_exhaustive()
    }
}

impl<C: PartialEq> Reloader<C> {
    /// Reloads from `path` with `load`; `summary` describes a change.
    pub fn new<E: Display>(
        path: impl Into<PathBuf>,
        load: impl Fn(&Path) -> Result<C, E> + Send + Sync + 'static,
        summary: impl Fn(&C, &C) -> String + Send + Sync + 'static,
    ) -> Self {
        Reloader {
            path: path.into(),
            load: Box::new(move |p| load(p).map_err(|e| e.to_string())),
            summary: Box::new(summary),
            last_refusal: None,
        }
    }

    /// The file (or directory) read.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads the configuration and compares it with `current`.
    pub fn check(&mut self, current: &C) -> Reload<C> {
        match (self.load)(&self.path) {
            Ok(new) => {
                if &new == current {
                    // In force: a refusal seen again later is news.
                    self.last_refusal = None;
                    Reload::Unchanged
                } else {
                    // Kept until the change is in force: a caller that
                    // then fails to apply it reports that only once.
                    let summary = (self.summary)(current, &new);
                    Reload::Changed(new, summary)
                }
            }
            Err(why) => self.refused(why),
        }
    }

    /// Records a refusal found after loading (e.g. a configured directory
    /// that cannot be opened): reported once, like a refused load.
    pub fn refused(&mut self, why: String) -> Reload<C> {
        if self.last_refusal.as_deref() == Some(why.as_str()) {
            Reload::StillRefused
        } else {
            self.last_refusal = Some(why.clone());
            Reload::Refused(why)
        }
    }
}

/// A reference to the ConfigMap `name` in `namespace`, the object reload
/// events are recorded on.
pub fn config_map_ref(name: &str, namespace: &str) -> ObjectReference {
    ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("ConfigMap".into()),
        namespace: Some(namespace.to_string()),
        name: Some(name.to_string()),
        ..Default::default()
    }
}

/// Logs a reload outcome and records it as an event on `object`: a change
/// as a Normal [`RELOADED_REASON`], a new refusal as a Warning
/// [`REFUSED_REASON`]. Nothing for no change or a repeated refusal. A
/// failed event is logged only.
pub async fn announce<C>(events: &Events, object: &ObjectReference, outcome: &Reload<C>) {
    let (warning, reason, note) = match outcome {
        Reload::Unchanged | Reload::StillRefused => return,
        Reload::Changed(_, summary) => {
            tracing::info!(%summary, "configuration reloaded");
            (
                false,
                RELOADED_REASON,
                format!("configuration reloaded: {summary}"),
            )
        }
        Reload::Refused(why) => {
            tracing::error!(error = %why, "new configuration refused; the last good one stays in force");
            (
                true,
                REFUSED_REASON,
                format!("new configuration refused, the last good one stays in force: {why}"),
            )
        }
    };
    events.publish_reason(object, warning, reason, note).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(p: &Path) -> Result<u32, String> {
        let text = std::fs::read_to_string(p).map_err(|e| e.to_string())?;
        text.trim()
            .parse()
            .map_err(|_| format!("{text:?} is no number"))
    }

    #[test]
    fn changes_are_taken_and_refusals_reported_once() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("c");
        std::fs::write(&file, "1").unwrap();
        let mut r = Reloader::new(&file, load, |a, b| format!("{a} -> {b}"));
        assert!(matches!(r.check(&1), Reload::Unchanged));
        std::fs::write(&file, "2").unwrap();
        assert!(matches!(r.check(&1), Reload::Changed(2, s) if s == "1 -> 2"));
        std::fs::write(&file, "x").unwrap();
        assert!(matches!(r.check(&2), Reload::Refused(w) if w.contains("no number")));
        assert!(matches!(r.check(&2), Reload::StillRefused));
        std::fs::write(&file, "2").unwrap();
        assert!(matches!(r.check(&2), Reload::Unchanged));
        // A refusal after a load is also reported once.
        assert!(matches!(r.refused("bad dir".into()), Reload::Refused(_)));
        assert!(matches!(r.refused("bad dir".into()), Reload::StillRefused));
    }
}
