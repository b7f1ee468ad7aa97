//! Kubernetes Events the controller emits, with the Go library's reasons.
//!
//! Events are how a user learns why a claim stays Pending, so every message
//! names the object and says what to fix. Publishing is best effort: a failed
//! event is logged and never fails the operation it describes.

use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::Client;

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
        }
    }

    fn type_(self) -> EventType {
        match self {
            Reason::Provisioning | Reason::ProvisioningSucceeded => EventType::Normal,
            _ => EventType::Warning,
        }
    }

    fn action(self) -> &'static str {
        match self {
            Reason::VolumeFailedDelete => "Delete",
            _ => "Provision",
        }
    }
}

/// The step an event is about. Repeated events with the same reason *and*
/// action on one object are merged into a series by the recorder (keeping the
/// first message), so distinct causes get distinct actions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// The reason's default step (`Provision` or `Delete`).
    Default,
    /// Looking up the claim's StorageClass.
    ClassLookup,
    /// Checking the volume mode.
    VolumeModeCheck,
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
            Action::Reschedule => "Reschedule",
            Action::SavePersistentVolume => "SavePersistentVolume",
            Action::Cleanup => "Cleanup",
            Action::GiveUp => "GiveUp",
        }
    }
}

/// Publishes events for claims and volumes.
#[derive(Clone)]
pub struct Events {
    recorder: Recorder,
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
            recorder: Recorder::new(client, reporter),
        }
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
        if note.len() > 1000 {
            let mut cut = 1000;
            while !note.is_char_boundary(cut) {
                cut -= 1;
            }
            note.truncate(cut);
        }
        let ev = Event {
            type_: reason.type_(),
            reason: reason.as_str().to_string(),
            note: Some(note),
            action: action.as_str(reason).to_string(),
            secondary: None,
        };
        if let Err(e) = self.recorder.publish(&ev, object).await {
            tracing::warn!(reason = reason.as_str(), error = %e, "failed to publish event");
        }
    }
}
