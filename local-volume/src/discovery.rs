//! The discovery loop: every `--discovery-period`, read the mount table and
//! each class's discovery directory, create PVs for new volumes, and deal
//! with volumes that disappeared. Deletion of released PVs is not here: the
//! library's volume loop does it through [`crate::volumes::LocalVolumes`].
//!
//! [`decide_found`] and [`decide_vanished`] are pure; [`Discovery::pass`]
//! performs what they say. PVs are read from a reflector over this node's PVs
//! only (label [`NODE_LABEL`]); before anything destructive the PV is read
//! again from the API, never trusted from the cache.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use external_storage::controller::compact::{self, Compact};
use external_storage::controller::volume::is_ours;
use external_storage::controller::{delete_if_unchanged, Scope};
use external_storage::events::Events;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{ObjectReference, PersistentVolume};
use k8s_openapi::api::storage::v1::StorageClass;
use kube::api::{Api, PostParams};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Client, Resource};
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::labels::NODE_LABEL;
use crate::metrics::ClassMode;
use crate::pv::{self, ClassFacts, Found};
use crate::reload::{Reload, Reloader};
use crate::scan::{scan_class, MountTable};
use crate::state::VolumeState;
use crate::volumes::{CleanPoll, Cleaned, Volumes};

/// What the loop needs to know about an existing PV.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PvFacts {
    /// Made by one of our names.
    pub ours: bool,
    /// Points at the discovered entry.
    pub same_path: bool,
    /// The PV's UID, the precondition of a delete.
    pub uid: String,
    /// The PV's `status.phase` (Available, Bound, Released, ...).
    pub phase: String,
}

impl PvFacts {
    fn of(pv: &PersistentVolume, scope: &Scope, path_ok: bool) -> PvFacts {
        PvFacts {
            ours: is_ours(scope, pv),
            same_path: path_ok,
            uid: pv.metadata.uid.clone().unwrap_or_default(),
            phase: pv::phase_of(pv).unwrap_or_default().to_string(),
        }
    }
}

/// What to do about a usable volume.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FoundAction {
    /// It has its PV and the state is right.
    Nothing,
    /// It has its PV: record that it may hold data.
    MarkDirty,
    /// No PV and known clean (or never offered): record dirty, create the PV.
    Create,
    /// No PV but it may hold a previous tenant's data (its PV was deleted by
    /// hand, or a crash came between offering and cleaning): clean first.
    CleanThenCreate,
    /// A PV of that name exists and is not ours to manage: report it.
    Conflict(String),
}

/// Decides about a usable volume from its PV (if any) and its state.
pub fn decide_found(pv: Option<&PvFacts>, state: &VolumeState) -> FoundAction {
    match pv {
        Some(p) if !p.ours => FoundAction::Conflict(
            "a PV of this name exists and was not made by this provisioner: it is left alone"
                .into(),
        ),
        Some(p) if !p.same_path => FoundAction::Conflict(
            "a PV of this name points at another path (name collision): the volume is not offered"
                .into(),
        ),
        Some(p) => match state {
            VolumeState::Dirty => FoundAction::Nothing,
            // Cleaned after this very PV was released; the library deletes it next.
            VolumeState::Cleaned { uid } if *uid == p.uid && p.phase == "Released" => {
                FoundAction::Nothing
            }
            _ => FoundAction::MarkDirty,
        },
        None => match state {
            VolumeState::Dirty => FoundAction::CleanThenCreate,
            VolumeState::Unknown | VolumeState::Cleaned { .. } => FoundAction::Create,
        },
    }
}

/// What to do about a PV of ours whose volume is no longer usable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VanishedAction {
    /// Delete the PV (it is Available: nobody uses it).
    DeletePv,
    /// Warn (once): a bound volume is gone.
    WarnBound,
    /// Released or another phase: the library's volume loop handles it.
    Nothing,
}

/// Decides about a PV whose volume vanished.
pub fn decide_vanished(phase: &str) -> VanishedAction {
    match phase {
        "Available" | "Pending" | "" => VanishedAction::DeletePv,
        "Bound" => VanishedAction::WarnBound,
        _ => VanishedAction::Nothing,
    }
}

/// The discovery loop of one node.
pub struct Discovery {
    client: Client,
    volumes: Arc<Volumes>,
    scope: Scope,
    provisioner: String,
    events: Events,
    /// This node's PVs, compact (the library's cache form: 10,000 full
    /// PVs held ~100 MiB here).
    pvs: Store<Compact<PersistentVolume>>,
    classes: Store<StorageClass>,
    reported: HashMap<String, Instant>,
    /// The configuration this pass works with (taken at its start).
    config: Arc<Config>,
    /// Re-reads the configuration before each pass (hot reload), if set.
    reloader: Option<Reloader>,
    /// What reload events are about (the ConfigMap, else the Node).
    config_object: Option<ObjectReference>,
    /// Set once the first pass is done (for /readyz).
    pub ready: Arc<AtomicBool>,
}

impl Discovery {
    /// Starts the reflectors (ended by `shutdown`) and returns the loop.
    pub fn start(
        client: Client,
        volumes: Arc<Volumes>,
        scope: Scope,
        identity: &str,
        shutdown: &CancellationToken,
    ) -> Discovery {
        let selector = format!("{NODE_LABEL}={}", volumes.node.label_value());
        let (pvs, pv_writer) = reflector::store();
        let pv_stream = watcher(
            Api::<PersistentVolume>::all(client.clone()),
            compact::watch_config().labels(&selector),
        )
        .default_backoff()
        .map_ok(compact::event)
        .reflect(pv_writer)
        .for_each(|_| futures::future::ready(()));
        let (classes, class_writer) = reflector::store();
        let class_stream = watcher(
            Api::<StorageClass>::all(client.clone()),
            watcher::Config::default(),
        )
        .default_backoff()
        .reflect(class_writer)
        .for_each(|_| futures::future::ready(()));
        let stop = shutdown.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = stop.cancelled() => {}
                _ = futures::future::join(pv_stream, class_stream) => {}
            }
        });
        let provisioner = scope.names.first().cloned().unwrap_or_default();
        let events = Events::new(client.clone(), &provisioner, identity);
        let config = volumes.config();
        Discovery {
            client,
            config,
            reloader: None,
            config_object: None,
            volumes,
            scope,
            provisioner,
            events,
            pvs,
            classes,
            reported: HashMap::new(),
            ready: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Re-reads the configuration at `reloader`'s path before every pass;
    /// events about it go to `object` (the ConfigMap), else to the Node.
    pub fn with_reload(mut self, reloader: Reloader, object: Option<ObjectReference>) -> Self {
        self.reloader = Some(reloader);
        self.config_object = object;
        self
    }

    /// Applies a changed configuration, or reports one that is refused
    /// (the last good one stays in force).
    async fn reload(&mut self) {
        let Some(reloader) = self.reloader.as_mut() else {
            return;
        };
        let current = self.volumes.config();
        let outcome = match reloader.check(&current) {
            Reload::Changed(config, what) => {
                match config.check_state_dir(self.volumes.state.path()) {
                    Ok(()) => Reload::Changed(config, what),
                    Err(why) => reloader.refused(why.to_string()),
                }
            }
            other => other,
        };
        let object = self
            .config_object
            .clone()
            .unwrap_or_else(|| self.node_ref());
        external_storage::reload::announce(&self.events, &object, &outcome).await;
        if let Reload::Changed(config, _) = outcome {
            self.volumes.replace_config(config);
        }
    }

    /// Runs a pass every `period` until `shutdown`.
    pub async fn run(mut self, period: Duration, shutdown: CancellationToken) {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = async {
                let _ = self.pvs.wait_until_ready().await;
                let _ = self.classes.wait_until_ready().await;
            } => {}
        }
        tracing::info!(node = %self.volumes.node.name, classes = self.config.classes.len(), "discovery started");
        loop {
            let started = Instant::now();
            self.reload().await;
            self.config = self.volumes.config();
            self.pass().await;
            self.volumes
                .metrics
                .discovery_duration
                .observe(started.elapsed().as_secs_f64());
            self.ready.store(true, Ordering::Release);
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(period) => {}
            }
        }
        tracing::info!("discovery stopped");
    }

    fn node_ref(&self) -> ObjectReference {
        ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Node".into()),
            name: Some(self.volumes.node.name.clone()),
            uid: Some(self.volumes.node.uid.clone()).filter(|u| !u.is_empty()),
            ..Default::default()
        }
    }

    async fn event(&self, object: &ObjectReference, warning: bool, reason: &str, note: String) {
        self.events
            .publish_reason(object, warning, reason, note)
            .await;
    }

    /// Logs and records a Warning on the node, at most once per
    /// `minResyncPeriod` for the same message.
    async fn report(&mut self, reason: &str, message: String) {
        let quiet = self.config.min_resync_period;
        if self
            .reported
            .get(&message)
            .is_some_and(|t| t.elapsed() < quiet)
        {
            return;
        }
        self.reported.insert(message.clone(), Instant::now());
        tracing::warn!(reason, "{message}");
        let node = self.node_ref();
        self.event(&node, true, reason, message).await;
    }

    /// One discovery pass over every class.
    pub async fn pass(&mut self) {
        let mounts = match MountTable::read() {
            Ok(m) => m,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the mount table; skipping this pass");
                return;
            }
        };
        let classes: Vec<String> = self.config.classes.keys().cloned().collect();
        let mut volumes: BTreeMap<ClassMode, (i64, i64)> = BTreeMap::new();
        for class_name in classes {
            let class = self.config.classes[&class_name].clone();
            let Some(sc) = self.classes.get(&ObjectRef::new(&class_name)) else {
                self.report(
                    "StorageClassMissing",
                    format!(
                        "StorageClass {class_name} does not exist: create it (provisioner \
                         kubernetes.io/no-provisioner, volumeBindingMode WaitForFirstConsumer); \
                         its volumes are not offered until then"
                    ),
                )
                .await;
                continue;
            };
            let facts = ClassFacts {
                reclaim_policy: sc.reclaim_policy.clone().unwrap_or_else(|| "Delete".into()),
                mount_options: sc.mount_options.clone(),
            };
            if !matches!(facts.reclaim_policy.as_str(), "Delete" | "Retain") {
                self.report(
                    "StorageClassUnsupported",
                    format!(
                        "StorageClass {class_name} has reclaimPolicy {}: use Delete or Retain",
                        facts.reclaim_policy
                    ),
                )
                .await;
                continue;
            }
            let scan = match scan_class(&class_name, &class, &mounts) {
                Ok(s) => s,
                Err(e) => {
                    self.report(
                        "DiscoveryDirUnreadable",
                        format!(
                            "cannot list discovery directory {} of class {class_name}: {e}",
                            class.mount_dir.display()
                        ),
                    )
                    .await;
                    continue;
                }
            };
            for u in &scan.unusable {
                self.report(
                    "VolumeSkipped",
                    format!(
                        "{} (class {class_name}) is not offered: {}",
                        class.host_dir.join(&u.entry).display(),
                        u.reason
                    ),
                )
                .await;
            }
            let mut seen = HashSet::new();
            for found in &scan.found {
                seen.insert(found.entry.clone());
                let (count, bytes) = volumes
                    .entry(ClassMode::new(&class_name, found.kind()))
                    .or_default();
                *count += 1;
                *bytes += pv::round_capacity(found.bytes) as i64;
                self.found(found, &facts).await;
            }
            // PVs of this class whose volume is gone (each cached PV is
            // decoded one at a time; only those are kept).
            let gone: Vec<(PersistentVolume, String)> = self
                .pvs
                .state()
                .into_iter()
                .filter_map(|c| {
                    let p = c.get();
                    let ours =
                        pv::class_of(&p) == Some(class_name.as_str()) && is_ours(&self.scope, &p);
                    let entry = pv::entry_of(&p, &class).filter(|e| ours && !seen.contains(e))?;
                    Some((p, entry))
                })
                .collect();
            for (p, entry) in gone {
                let why = scan
                    .unusable
                    .iter()
                    .find(|u| u.entry == entry)
                    .map(|u| u.reason.clone())
                    .unwrap_or_else(|| "the entry is gone".into());
                self.vanished(&p, &class_name, &why).await;
            }
        }
        for (labels, (count, bytes)) in volumes {
            self.volumes
                .metrics
                .volumes
                .get_or_create(&labels)
                .set(count);
            self.volumes
                .metrics
                .capacity_bytes
                .get_or_create(&labels)
                .set(bytes);
        }
    }

    async fn found(&mut self, found: &Found, facts: &ClassFacts) {
        let name = pv::pv_name(&found.entry, &self.volumes.node.name, &found.class);
        let class = &self.config.classes[&found.class];
        let existing = self.pvs.get(&ObjectRef::new(&name)).map(|c| c.get());
        let pv_facts = existing.as_ref().map(|p| {
            PvFacts::of(
                p,
                &self.scope,
                pv::entry_of(p, class).as_deref() == Some(found.entry.as_str()),
            )
        });
        let state = match self.volumes.state.get(&name) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(pv = name, error = %e, "cannot read the volume's state; not offering it");
                return;
            }
        };
        let action = decide_found(pv_facts.as_ref(), &state);
        if action != FoundAction::CleanThenCreate {
            // A finished cleaning started by an earlier pass is reflected in
            // the state; its result must never answer a later request.
            self.volumes.forget_finished(&name, "");
        }
        match action {
            FoundAction::Nothing => {}
            FoundAction::MarkDirty => {
                if let Err(e) = self.volumes.state.set(&name, &VolumeState::Dirty) {
                    tracing::error!(pv = name, error = %e, "cannot record the volume's state");
                }
            }
            FoundAction::Conflict(why) => {
                let path = class.host_dir.join(&found.entry);
                self.report(
                    "VolumeConflict",
                    format!("{} (PV {name}): {why}", path.display()),
                )
                .await;
            }
            FoundAction::Create => self.create(found, facts, &name).await,
            FoundAction::CleanThenCreate => {
                // The cache may lag behind a PV created moments ago: only the
                // API saying 404 allows touching the data.
                let api: Api<PersistentVolume> = Api::all(self.client.clone());
                match api.get_opt(&name).await {
                    Ok(None) => {}
                    Ok(Some(_)) => return,
                    Err(e) => {
                        tracing::warn!(pv = name, error = %e, "cannot check whether the PV exists");
                        return;
                    }
                }
                let path = class.host_dir.join(&found.entry).display().to_string();
                let note = format!(
                    "PV {name} was deleted while its volume {path} could still hold a tenant's \
                     data: cleaning the volume before offering it again"
                );
                if self.reported.insert(note.clone(), Instant::now()).is_none() {
                    tracing::warn!("{note}");
                    let node = self.node_ref();
                    self.event(&node, false, "CleaningBeforeReuse", note.clone())
                        .await;
                }
                let class_name = found.class.clone();
                match self
                    .volumes
                    .clean(
                        &name,
                        "",
                        &class_name,
                        &found.entry,
                        Duration::from_millis(500),
                    )
                    .await
                {
                    CleanPoll::Running => {}
                    CleanPoll::Finished(Ok(Cleaned::Done)) => {
                        // A later manual delete of the new PV is reported again.
                        self.reported.remove(&note);
                        self.create(found, facts, &name).await
                    }
                    CleanPoll::Finished(Ok(Cleaned::Missing(_))) => {}
                    CleanPoll::Finished(Err(e)) => {
                        self.report(
                            "VolumeFailedClean",
                            format!("cleaning the volume {path} of deleted PV {name} failed: {e}"),
                        )
                        .await;
                    }
                }
            }
        }
    }

    async fn create(&mut self, found: &Found, facts: &ClassFacts, name: &str) {
        if let Err(e) = self.volumes.state.set(name, &VolumeState::Dirty) {
            tracing::error!(pv = name, error = %e, "cannot record the volume's state; not offering it");
            return;
        }
        let class = &self.config.classes[&found.class];
        let pv = pv::build(
            found,
            class,
            facts,
            &self.config,
            &self.volumes.node,
            &self.provisioner,
        );
        let api: Api<PersistentVolume> = Api::all(self.client.clone());
        match api.create(&PostParams::default(), &pv).await {
            Ok(_) => {
                self.volumes
                    .metrics
                    .created_total
                    .get_or_create(&ClassMode::new(&found.class, found.kind()))
                    .inc();
                tracing::info!(
                    pv = name,
                    path = %class.host_dir.join(&found.entry).display(),
                    bytes = found.bytes,
                    mode = found.kind(),
                    "created PV for discovered volume"
                );
            }
            Err(kube::Error::Api(s)) if s.code == 409 => {
                tracing::debug!(pv = name, "PV exists already");
            }
            Err(e) => {
                self.report("VolumeCreateFailed", format!("creating PV {name}: {e}"))
                    .await;
            }
        }
    }

    async fn vanished(&mut self, pv: &PersistentVolume, class: &str, why: &str) {
        let name = pv.metadata.name.clone().unwrap_or_default();
        let phase = pv::phase_of(pv).unwrap_or_default();
        let path = pv
            .spec
            .as_ref()
            .and_then(|s| s.local.as_ref())
            .map(|l| l.path.clone())
            .unwrap_or_default();
        match decide_vanished(phase) {
            VanishedAction::Nothing => {}
            VanishedAction::WarnBound => {
                let note = format!(
                    "the volume of bound PV {name} at {path} is gone ({why}): pods using it cannot \
                     start; restore the mount or device, or delete the claim"
                );
                if !self.reported.contains_key(&note) {
                    self.reported.insert(note.clone(), Instant::now());
                    tracing::warn!("{note}");
                    self.event(&pv.object_ref(&()), true, "VolumeMissing", note)
                        .await;
                }
            }
            VanishedAction::DeletePv => {
                let api: Api<PersistentVolume> = Api::all(self.client.clone());
                match api.delete(&name, &delete_if_unchanged(pv)).await {
                    Ok(_) => {
                        let mode = if pv.spec.as_ref().and_then(|s| s.volume_mode.as_deref())
                            == Some("Block")
                        {
                            "Block"
                        } else {
                            "Filesystem"
                        };
                        self.volumes
                            .metrics
                            .deleted_total
                            .get_or_create(&ClassMode::new(class, mode))
                            .inc();
                        tracing::warn!(
                            pv = name,
                            path,
                            reason = why,
                            "deleted the Available PV of a volume that disappeared"
                        );
                    }
                    Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => {}
                    Err(e) => {
                        tracing::warn!(pv = name, error = %e, "cannot delete the PV of a vanished volume")
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(ours: bool, same_path: bool, uid: &str, phase: &str) -> PvFacts {
        PvFacts {
            ours,
            same_path,
            uid: uid.into(),
            phase: phase.into(),
        }
    }

    #[test]
    fn a_volume_without_pv_is_offered_only_when_clean() {
        assert_eq!(
            decide_found(None, &VolumeState::Unknown),
            FoundAction::Create
        );
        assert_eq!(
            decide_found(None, &VolumeState::Cleaned { uid: "u".into() }),
            FoundAction::Create
        );
        // The Go provisioner's leak: a PV deleted by hand must not bring the
        // old data back into circulation.
        assert_eq!(
            decide_found(None, &VolumeState::Dirty),
            FoundAction::CleanThenCreate
        );
    }

    #[test]
    fn a_volume_with_its_pv_is_marked_dirty_unless_just_cleaned() {
        let bound = facts(true, true, "u1", "Bound");
        assert_eq!(
            decide_found(Some(&bound), &VolumeState::Unknown),
            FoundAction::MarkDirty
        );
        assert_eq!(
            decide_found(Some(&bound), &VolumeState::Dirty),
            FoundAction::Nothing
        );
        let released = facts(true, true, "u1", "Released");
        assert_eq!(
            decide_found(Some(&released), &VolumeState::Cleaned { uid: "u1".into() }),
            FoundAction::Nothing,
            "cleaned, waiting for the library to delete the PV"
        );
        // Cleaned for an older PV, or re-bound by hand after cleaning: dirty again.
        assert_eq!(
            decide_found(Some(&released), &VolumeState::Cleaned { uid: "u0".into() }),
            FoundAction::MarkDirty
        );
        assert_eq!(
            decide_found(Some(&bound), &VolumeState::Cleaned { uid: "u1".into() }),
            FoundAction::MarkDirty
        );
    }

    #[test]
    fn foreign_or_colliding_pvs_are_reported_not_touched() {
        assert!(matches!(
            decide_found(
                Some(&facts(false, true, "u", "Available")),
                &VolumeState::Dirty
            ),
            FoundAction::Conflict(_)
        ));
        assert!(matches!(
            decide_found(
                Some(&facts(true, false, "u", "Available")),
                &VolumeState::Unknown
            ),
            FoundAction::Conflict(_)
        ));
    }

    #[test]
    fn vanished_volumes() {
        assert_eq!(decide_vanished("Available"), VanishedAction::DeletePv);
        assert_eq!(decide_vanished("Bound"), VanishedAction::WarnBound);
        assert_eq!(decide_vanished("Released"), VanishedAction::Nothing);
        assert_eq!(decide_vanished("Failed"), VanishedAction::Nothing);
    }
}
