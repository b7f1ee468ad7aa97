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
//! Only Warning events go through a recorder: they repeat while something
//! fails, and a repeat becomes a series. Normal events (a claim provisioned,
//! a volume expanded) happen once per object and step, so they are created
//! directly: a recorder would hold each in memory for 6 minutes (at 10,000
//! claims, tens of MiB) to merge a repeat that does not come.
//!
//! A Normal event does not hold up the work it describes: it goes into an
//! outbox that one background task sends from, in order of publishing, with
//! up to [`IN_FLIGHT`] creates on the wire at once (client-go's
//! broadcaster sends one at a time and drops what its queue cannot hold).
//! Awaiting each create cost a worker one API round trip per claim, and
//! under a client rate limit every event took a token the next claim's PV
//! create was waiting for; the sender takes at most [`IN_FLIGHT`] request
//! slots beside the workers. The outbox holds at most [`OUTBOX`] events;
//! beyond that a publish waits for room, so a slow API server slows the
//! workers down instead of growing a queue, and no event is dropped unsent
//! (a publisher made [`counted`](Events::counted) counts the sent and the
//! refused). [`Events::flush`] waits until what was published before it is
//! sent (the controller calls it when its workers
//! stop). Warnings are awaited (see `emit`).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::Client;
use tokio::sync::{mpsc, oneshot};

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
    /// Normal: a deleted volume's data was moved to an archive (the
    /// provisioner's `onDelete: archive`); the note names the archive.
    VolumeArchived,
    /// Normal: a deleted volume's data was left in place (`onDelete:
    /// retain`); the note names the directory.
    VolumeRetained,
    /// Warning, on a claim: its volume was on a node that was deleted, and
    /// its PV was deleted (`--delete-volumes-of-deleted-nodes-after`).
    VolumeOfDeletedNode,
    /// Normal, on a PV: deleted because its node was deleted
    /// (`--delete-volumes-of-deleted-nodes-after`); its data was not touched.
    DeletedNodeVolumeRemoved,
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
            Reason::VolumeArchived => "VolumeArchived",
            Reason::VolumeRetained => "VolumeRetained",
            Reason::VolumeOfDeletedNode => "VolumeOfDeletedNode",
            Reason::DeletedNodeVolumeRemoved => "DeletedNodeVolumeRemoved",
        }
    }

    fn type_(self) -> EventType {
        match self {
            Reason::Provisioning
            | Reason::ProvisioningSucceeded
            | Reason::VolumeResizeSuccessful
            | Reason::VolumeArchived
            | Reason::VolumeRetained
            | Reason::DeletedNodeVolumeRemoved => EventType::Normal,
            _ => EventType::Warning,
        }
    }

    fn action(self) -> &'static str {
        match self {
            Reason::VolumeFailedDelete
            | Reason::VolumeArchived
            | Reason::VolumeRetained
            | Reason::VolumeOfDeletedNode
            | Reason::DeletedNodeVolumeRemoved => "Delete",
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
    /// Checking the claim's data source.
    DataSourceCheck,
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
            Action::DataSourceCheck => "DataSourceCheck",
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

/// The longest event name kube-apiserver accepts on `events.k8s.io/v1`
/// (a DNS subdomain, validated strictly there; `v1` Events skip it).
const EVENT_NAME_MAX: usize = 253;
/// kube's recorder names an event `<object name>.<nanoseconds in hex>`: the
/// dot and 16 hex digits (until 2262).
const EVENT_NAME_SUFFIX: usize = 17;
/// `reportingInstance` is at most 128 characters.
const REPORTING_INSTANCE_MAX: usize = 128;

/// Whether kube's recorder can name an event about an object called
/// `name`: `<name>.<16 hex digits>` must stay within 253 characters, or
/// the API server refuses the event (422). Names of claims may be 253
/// characters long.
pub fn recorder_can_name(name: &str) -> bool {
    name.len() + EVENT_NAME_SUFFIX <= EVENT_NAME_MAX
}

/// The name of an event about an object whose name is too long for the
/// recorder's scheme: the name cut to leave room for the suffix (and to end
/// on an alphanumeric character, as a DNS subdomain must), a dot and the
/// time in hex nanoseconds.
pub fn short_event_name(object: &str, nanos: i128) -> String {
    let mut head = object.to_string();
    crate::text::truncate(&mut head, EVENT_NAME_MAX - EVENT_NAME_SUFFIX);
    let head = head.trim_end_matches(|c: char| !c.is_ascii_alphanumeric());
    format!("{head}.{nanos:x}")
}

/// The name of an event about `object` created at `nanos`: the recorder's
/// `<object>.<hex nanoseconds>`, or a [`short_event_name`] when that would
/// be too long.
pub fn event_name(object: &str, nanos: i128) -> String {
    if recorder_can_name(object) {
        format!("{object}.{nanos:x}")
    } else {
        short_event_name(object, nanos)
    }
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

/// Normal events waiting to be sent, at most, per [`Events`] and its clones.
pub const OUTBOX: usize = 1024;

/// Normal events the sender task has on the wire at once: enough that a
/// burst of new volumes is not paced by one event's round trip, few enough
/// to leave the workers the client's rate-limit tokens.
pub const IN_FLIGHT: usize = 4;

/// What the sender task is handed.
enum Outgoing {
    /// A Normal event about an object, stamped when it was published.
    Event(Box<(Event, ObjectReference, k8s_openapi::jiff::Timestamp)>),
    /// Answer once everything before it was sent.
    Flush(oneshot::Sender<()>),
}

/// Publishes events for claims and volumes.
#[derive(Clone)]
pub struct Events {
    client: Client,
    reporter: Reporter,
    recorders: Arc<Mutex<ExpiringMap<Recorder>>>,
    /// The outbox, with its sender task started on first use (so that a
    /// publisher can be made outside a runtime).
    outbox: Arc<std::sync::OnceLock<mpsc::Sender<Outgoing>>>,
    /// Where sent and failed Normal events are counted, if anywhere.
    metrics: Option<Arc<crate::metrics::Metrics>>,
}

impl Events {
    /// A publisher reporting as `controller` (the provisioner name) from
    /// `instance` (this replica's identity).
    pub fn new(client: Client, controller: &str, instance: &str) -> Self {
        let mut instance = instance.to_string();
        crate::text::truncate(&mut instance, REPORTING_INSTANCE_MAX);
        let reporter = Reporter {
            controller: controller.to_string(),
            instance: Some(instance),
        };
        Self {
            client,
            reporter,
            recorders: Arc::new(Mutex::new(ExpiringMap::new(RECORDER_IDLE))),
            outbox: Arc::default(),
            metrics: None,
        }
    }

    /// The same publisher, counting its Normal events in `metrics`
    /// (`controller_events_sent_total`, `controller_events_failed_total`).
    /// Call before the first publish.
    pub fn counted(mut self, metrics: Arc<crate::metrics::Metrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// Waits until every event published through this publisher (or a
    /// clone) before the call has been sent or has failed, or `timeout` has
    /// passed; `false` if some were still waiting then.
    pub async fn flush(&self, timeout: Duration) -> bool {
        let (done, sent) = oneshot::channel();
        let waited = async {
            self.outbox().send(Outgoing::Flush(done)).await.ok()?;
            sent.await.ok()
        };
        matches!(tokio::time::timeout(timeout, waited).await, Ok(Some(())))
    }

    /// The outbox; the first call starts its sender task, which ends when
    /// the last clone of this publisher is dropped.
    fn outbox(&self) -> &mpsc::Sender<Outgoing> {
        self.outbox.get_or_init(|| {
            let (tx, mut rx) = mpsc::channel(OUTBOX);
            let (client, reporter) = (self.client.clone(), self.reporter.clone());
            let metrics = self.metrics.clone();
            let send = move |pending: Box<(
                Event,
                ObjectReference,
                k8s_openapi::jiff::Timestamp,
            )>| {
                let (client, reporter, metrics) =
                    (client.clone(), reporter.clone(), metrics.clone());
                async move {
                    let (ev, object, at) = *pending;
                    let result = create_direct(&client, &reporter, &ev, &object, at).await;
                    if let Err(e) = &result {
                        tracing::warn!(reason = %ev.reason, error = %e, "failed to publish event");
                    }
                    if let Some(m) = metrics {
                        match result {
                            Ok(()) => m.events_sent_total.inc(),
                            Err(_) => m.events_failed_total.inc(),
                        };
                    }
                }
            };
            tokio::spawn(async move {
                use futures::StreamExt;
                // Up to IN_FLIGHT creates at once; a flush answers once
                // everything before it has been sent.
                let mut in_flight = futures::stream::FuturesUnordered::new();
                loop {
                    tokio::select! {
                        Some(()) = in_flight.next(), if !in_flight.is_empty() => {}
                        out = rx.recv(), if in_flight.len() < IN_FLIGHT => match out {
                            None => break,
                            Some(Outgoing::Event(pending)) => in_flight.push(send(pending)),
                            Some(Outgoing::Flush(done)) => {
                                while in_flight.next().await.is_some() {}
                                let _ = done.send(());
                            }
                        },
                    }
                }
                while in_flight.next().await.is_some() {}
            });
            tx
        })
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
        let warning = reason.type_() == EventType::Warning;
        self.emit(
            object,
            warning,
            reason.as_str(),
            action.as_str(reason),
            note,
        )
        .await
    }

    /// Publish an event with a provisioner's own `reason` (configuration
    /// reloads, discovery: anything outside the provisioning protocol) about
    /// `object`, a Warning if `warning`, else Normal; its action is the
    /// reason. Published like every event here (see the module docs).
    pub async fn publish_reason(
        &self,
        object: &ObjectReference,
        warning: bool,
        reason: &str,
        note: String,
    ) {
        self.emit(object, warning, reason, reason, note).await
    }

    async fn emit(
        &self,
        object: &ObjectReference,
        warning: bool,
        reason: &str,
        step: &str,
        note: String,
    ) {
        let mut note = note;
        crate::text::truncate(&mut note, 1000);
        let ev = Event {
            type_: if warning {
                EventType::Warning
            } else {
                EventType::Normal
            },
            reason: reason.to_string(),
            action: series_action(step, &note),
            note: Some(note),
            secondary: None,
        };
        let name = object.name.as_deref().unwrap_or_default();
        // Warnings repeat while something fails: they go through the
        // object's recorder and become a series. They are awaited, one at a
        // time per caller: the recorder looks up its series before it
        // creates and records after, so two repeats sent at once would make
        // two Events.
        if recorder_can_name(name) && ev.type_ == EventType::Warning {
            if let Err(e) = self.recorder(object).publish(&ev, object).await {
                tracing::warn!(reason, error = %e, "failed to publish event");
            }
            return;
        }
        // Normal events (one per claim and step, once it works) are created
        // directly, without a recorder (whose cache would hold each for 6
        // minutes to merge a repeat that does not come: at 10,000 claims,
        // tens of MiB), by the outbox's sender. Stamped now, not when sent.
        let at = k8s_openapi::jiff::Timestamp::now();
        let out = Outgoing::Event(Box::new((ev, object.clone(), at)));
        if self.outbox().send(out).await.is_err() {
            tracing::warn!(reason, "failed to publish event: the event sender stopped");
        }
    }
}

/// Creates the event itself, named like the recorder names it
/// (`<object>.<hex nanoseconds>`), or with a [`short_event_name`] for an
/// object whose name leaves no room for that; no series: each repeat is
/// a new Event.
async fn create_direct(
    client: &Client,
    reporter: &Reporter,
    ev: &Event,
    object: &ObjectReference,
    now: k8s_openapi::jiff::Timestamp,
) -> Result<(), kube::Error> {
    use k8s_openapi::api::events::v1::Event as K8sEvent;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
    let namespace = object.namespace.clone().unwrap_or_else(|| "default".into());
    let event = K8sEvent {
        action: Some(ev.action.clone()),
        reason: Some(ev.reason.clone()),
        event_time: Some(MicroTime(now)),
        regarding: Some(object.clone()),
        note: ev.note.clone(),
        metadata: kube::api::ObjectMeta {
            namespace: Some(namespace.clone()),
            name: Some(event_name(
                object.name.as_deref().unwrap_or_default(),
                now.as_nanosecond(),
            )),
            ..Default::default()
        },
        reporting_controller: Some(reporter.controller.clone()),
        reporting_instance: reporter.instance.clone(),
        type_: Some(
            match ev.type_ {
                EventType::Normal => "Normal",
                EventType::Warning => "Warning",
            }
            .into(),
        ),
        ..Default::default()
    };
    kube::Api::<K8sEvent>::namespaced(client.clone(), &namespace)
        .create(&Default::default(), &event)
        .await
        .map(|_| ())
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
    fn event_names_stay_within_253_characters() {
        let longest = format!("{}.{}", vec!["x".repeat(63); 3].join("."), "y".repeat(61));
        assert_eq!(longest.len(), 253);
        assert!(!recorder_can_name(&longest));
        assert!(recorder_can_name(&"z".repeat(236)));
        assert!(!recorder_can_name(&"z".repeat(237)));
        let nanos = 1_800_000_000_000_000_000_i128;
        let name = short_event_name(&longest, nanos);
        assert!(name.len() <= 253, "{}", name.len());
        assert!(name.ends_with(&format!(".{nanos:x}")));
        // The cut lands after "x...x." (a dot at 236): it must not end the head.
        assert!(!name.contains(".."), "{name}");
        assert_eq!(event_name("pvc", 255), "pvc.ff");
        assert_eq!(event_name(&longest, nanos), name);
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
