//! Kubernetes Events the controller emits, with the Go library's reasons.
//!
//! Events are how a user learns why a claim stays Pending, so every message
//! names the object and says what to fix. Publishing is best effort: a failed
//! event is logged and never fails the operation it describes.
//!
//! kube's [`Recorder`] merges a repeated event into a series through a cache
//! of everything it published in the last 6 minutes, and walks that whole
//! cache on every publish. One recorder for the controller made a burst of N
//! claims cost O(N²): at 10,000 claims (20,000 events) it was the largest
//! CPU consumer of the whole bench. [`Events`] therefore keeps one recorder
//! per object (its cache then holds only that object's events) and drops the
//! recorders of objects that were quiet for longer than that cache's life.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::Client;

use crate::expiring::ExpiringMap;

/// The event reasons, as in sig-storage-lib-external-provisioner.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// Normal: the provisioner was asked for a volume.
    Provisioning,
    /// Normal: the PV was saved.
    ProvisioningSucceeded,
    /// Warning: provisioning failed (or is being rescheduled / given up).
    ProvisioningFailed,
    /// Warning: a backend volume could not be cleaned up after a failure.
    ProvisioningCleanupFailed,
    /// Warning: deleting a Released volume failed.
    VolumeFailedDelete,
    /// Normal: a bound volume was expanded to its claim's request.
    VolumeResizeSuccessful,
    /// Warning: expanding a bound volume failed.
    VolumeResizeFailed,
    /// Warning: the class's `mountOptions` were left out of a PV whose
    /// volume type the kubelet mounts without options.
    MountOptionsIgnored,
}

impl Reason {
    /// The reason string.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Provisioning => "Provisioning",
            Reason::ProvisioningSucceeded => "ProvisioningSucceeded",
            Reason::ProvisioningFailed => "ProvisioningFailed",
            Reason::ProvisioningCleanupFailed => "ProvisioningCleanupFailed",
            Reason::VolumeFailedDelete => "VolumeFailedDelete",
            Reason::VolumeResizeSuccessful => "VolumeResizeSuccessful",
            Reason::VolumeResizeFailed => "VolumeResizeFailed",
            Reason::MountOptionsIgnored => "MountOptionsIgnored",
        }
    }

    fn type_(self) -> EventType {
        match self {
            Reason::Provisioning
            | Reason::ProvisioningSucceeded
            | Reason::VolumeResizeSuccessful => EventType::Normal,
            _ => EventType::Warning,
        }
    }

    fn action(self) -> &'static str {
        match self {
            Reason::VolumeFailedDelete => "Delete",
            Reason::VolumeResizeSuccessful | Reason::VolumeResizeFailed => "Expand",
            _ => "Provision",
        }
    }
}

/// The step an event is about. The recorder merges repeated events with the
/// same reason *and* action on one object into a series and keeps the first
/// message; so that a new message is never hidden behind an old one, the
/// published action is this step plus a short hash of the message (see
/// [`series_action`]): identical messages still form one series.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// The reason's default step (`Provision` or `Delete`).
    Default,
    /// Looking up the claim's StorageClass.
    ClassLookup,
    /// Checking the volume mode.
    VolumeModeCheck,
    /// Finding the node a node-local volume belongs on.
    NodeSelection,
    /// Asking the scheduler to pick another node.
    Reschedule,
    /// Saving the PV object.
    SavePersistentVolume,
    /// Deleting a backend volume nobody will use.
    Cleanup,
    /// Giving up after the failure threshold.
    GiveUp,
}

impl Action {
    fn as_str(self, reason: Reason) -> &'static str {
        match self {
            Action::Default => reason.action(),
            Action::ClassLookup => "ClassLookup",
            Action::VolumeModeCheck => "VolumeModeCheck",
            Action::NodeSelection => "NodeSelection",
            Action::Reschedule => "Reschedule",
            Action::SavePersistentVolume => "SavePersistentVolume",
            Action::Cleanup => "Cleanup",
            Action::GiveUp => "GiveUp",
        }
    }
}

/// The action published for `step` with `note`: `<step>/<8 hex digits of the
/// note's FNV-1a hash>`. Equal notes give equal actions (merged into one
/// series by the recorder); a different note starts a new event.
pub fn series_action(step: &str, note: &str) -> String {
    let hash = note.bytes().fold(0x811c_9dc5_u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    });
    format!("{step}/{hash:08x}")
}

/// How long an object's recorder is kept after its last event: kube's
/// recorder forgets an event after 6 minutes, so a later repeat starts a new
/// Event object either way.
const RECORDER_IDLE: Duration = Duration::from_secs(6 * 60);

/// The key of an object's recorder: its UID, else kind, namespace and name.
fn object_key(object: &ObjectReference) -> String {
    match &object.uid {
        Some(uid) if !uid.is_empty() => uid.clone(),
        _ => format!(
            "{}/{}/{}",
            object.kind.as_deref().unwrap_or_default(),
            object.namespace.as_deref().unwrap_or_default(),
            object.name.as_deref().unwrap_or_default()
        ),
    }
}

/// Publishes events for claims and volumes.
#[derive(Clone)]
pub struct Events {
    client: Client,
    reporter: Reporter,
    recorders: Arc<Mutex<ExpiringMap<Recorder>>>,
}

impl Events {
    /// A publisher reporting as `controller` (the provisioner name) from
    /// `instance` (this replica's identity).
    pub fn new(client: Client, controller: &str, instance: &str) -> Self {
        let reporter = Reporter {
            controller: controller.to_string(),
            instance: Some(instance.to_string()),
        };
        Self {
            client,
            reporter,
            recorders: Arc::new(Mutex::new(ExpiringMap::new(RECORDER_IDLE))),
        }
    }

    /// The recorder of `object` (one per object: see the module docs).
    fn recorder(&self, object: &ObjectReference) -> Recorder {
        let mut recorders = self.recorders.lock().unwrap_or_else(|e| e.into_inner());
        recorders
            .get_or_insert_with(&object_key(object), Instant::now(), || {
                Recorder::new(self.client.clone(), self.reporter.clone())
            })
            .clone()
    }

    /// Publish `reason` with `note` about `object`; failures are logged only.
    pub async fn publish(&self, object: &ObjectReference, reason: Reason, note: String) {
        self.publish_for(object, reason, Action::Default, note)
            .await
    }

    /// Publish `reason` for a specific `action` (see [`Action`]).
    pub async fn publish_for(
        &self,
        object: &ObjectReference,
        reason: Reason,
        action: Action,
        note: String,
    ) {
        let mut note = note;
        crate::text::truncate(&mut note, 1000);
        let ev = Event {
            type_: reason.type_(),
            reason: reason.as_str().to_string(),
            action: series_action(action.as_str(reason), &note),
            note: Some(note),
            secondary: None,
        };
        if let Err(e) = self.recorder(object).publish(&ev, object).await {
            tracing::warn!(reason = reason.as_str(), error = %e, "failed to publish event");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_notes_share_an_action_and_different_notes_do_not() {
        let a = series_action("Provision", "bad parameter `mode`");
        assert_eq!(a, series_action("Provision", "bad parameter `mode`"));
        assert_ne!(a, series_action("Provision", "bad parameter `volumeType`"));
        assert_ne!(a, series_action("Delete", "bad parameter `mode`"));
        assert!(a.starts_with("Provision/") && a.len() == "Provision/".len() + 8);
        // FNV-1a of the empty string is its offset basis.
        assert_eq!(series_action("X", ""), "X/811c9dc5");
    }

    #[test]
    fn objects_are_keyed_by_uid_else_by_kind_namespace_and_name() {
        let with_uid = ObjectReference {
            uid: Some("u1".into()),
            name: Some("c".into()),
            ..Default::default()
        };
        assert_eq!(object_key(&with_uid), "u1");
        let without = ObjectReference {
            kind: Some("PersistentVolume".into()),
            name: Some("pv-1".into()),
            ..Default::default()
        };
        assert_eq!(object_key(&without), "PersistentVolume//pv-1");
    }
}
