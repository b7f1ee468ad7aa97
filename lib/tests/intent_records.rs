//! A backend that records provisioning intent itself (`IntentRecords`):
//! the claim loop sends no intent finalizer patches, and the intent sweep
//! keeps the leak-proof guarantee across crashes at each step. Against
//! kube-testserver with the in-memory provisioner of `common` (its pending
//! records stand for hostfs's; hostpath's own tests cover those on disk).

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::*;
use external_storage::annotations as a;
use kube_testserver::TestServer;

async fn server() -> (TestServer, kube::Client) {
    let ts = TestServer::start().await.expect("test server starts");
    let client = ts.client().await;
    (ts, client)
}

/// A backend that records intent, and a sweep that looks after 1 s.
fn recording() -> (std::sync::Arc<Mem>, external_storage::ControllerOptions) {
    let mem = Mem::new();
    mem.knobs().records = true;
    let mut opts = fast_options();
    opts.pending_volume_grace = Duration::from_secs(1);
    (mem, opts)
}

#[tokio::test]
async fn a_recording_backend_spares_the_claim_both_intent_patches() {
    let (ts, client) = server().await;
    let (mem, opts) = recording();
    let ctrl = spawn(client.clone(), mem.clone(), opts);
    create_class(&client, "fast", false, "Delete").await;
    let before = ts.stats();
    for i in 0..5 {
        create_scheduled_claim(&client, &format!("c{i}"), "fast", None).await;
    }
    for i in 0..5 {
        wait_bound(&client, &format!("c{i}")).await;
        let c = claims(&client).get(&format!("c{i}")).await.unwrap();
        assert!(!has_finalizer(&c, a::PROVISIONING_FINALIZER));
    }
    let after = ts.stats();
    let patches = after.count("patch", "persistentvolumeclaims")
        - before.count("patch", "persistentvolumeclaims");
    assert_eq!(patches, 0, "no claim patch for a recording backend");
    assert_eq!(
        after.count("create", "persistentvolumes") - before.count("create", "persistentvolumes"),
        5
    );
    assert!(
        mem.pending.lock().unwrap().is_empty(),
        "every record marked saved"
    );
    assert_eq!(mem.max_times_created(), 1);
    // Deleting still works through the volume loop.
    delete_claim(&client, "c0").await;
    wait_for("c0's volume deleted", || async {
        (mem.volume_count() == 4).then_some(())
    })
    .await;
    ctrl.stop().await;
}

/// A controller killed after claim `c1`'s backend volume was made, before
/// its PV: the server, client, backend, options and the volume's name.
async fn killed_after_the_backend_volume() -> (
    TestServer,
    kube::Client,
    std::sync::Arc<Mem>,
    external_storage::ControllerOptions,
    String,
) {
    let (ts, client) = server().await;
    let (mem, opts) = recording();
    create_class(&client, "fast", false, "Delete").await;
    mem.knobs().gate = Some(Gate::AfterCreate);
    let first = spawn(client.clone(), mem.clone(), opts.clone());
    let name = claim_held_at_gate(&client, &mem, "c1", "fast").await;
    assert!(mem.has(&name) && mem.pending.lock().unwrap().contains_key(&name));
    first.kill().await;
    mem.open_gate();
    (ts, client, mem, opts, name)
}

/// Killed after the backend volume, before its PV; the claim is deleted
/// meanwhile: the next instance's sweep removes the volume.
#[tokio::test]
async fn killed_before_the_pv_and_the_claim_deleted_the_sweep_removes_the_volume() {
    let (_ts, client, mem, opts, name) = killed_after_the_backend_volume().await;
    // No finalizer holds it: the claim goes at once.
    delete_claim(&client, "c1").await;
    wait_claim_gone(&client, "c1").await;

    let second = spawn(client.clone(), mem.clone(), opts);
    wait_for("the orphaned volume removed by the sweep", || async {
        (!mem.has(&name)).then_some(())
    })
    .await;
    assert!(mem.pending.lock().unwrap().is_empty());
    assert!(pvs(&client).get_opt(&name).await.unwrap().is_none());
    assert_eq!(second.metrics.pending_volumes_discarded_total.get(), 1);
    second.stop().await;
}

/// Killed after the backend volume, before its PV; the claim still waits:
/// the next instance provisions it with the same volume, nothing removed.
#[tokio::test]
async fn killed_before_the_pv_with_the_claim_waiting_the_same_volume_is_saved() {
    let (_ts, client, mem, opts, name) = killed_after_the_backend_volume().await;
    let second = spawn(client.clone(), mem.clone(), opts);
    wait_bound(&client, "c1").await;
    wait_for("record marked saved", || async {
        mem.pending.lock().unwrap().is_empty().then_some(())
    })
    .await;
    assert_eq!(mem.times_created(&name), 1, "no second volume");
    assert!(mem.has(&name) && mem.deleted.lock().unwrap().is_empty());
    second.stop().await;
}

/// Killed after the PV was saved, before the record was marked: the sweep
/// finds the PV and marks the record; the volume is never removed.
#[tokio::test]
async fn killed_after_the_pv_before_the_mark_the_volume_is_kept() {
    let (_ts, client) = server().await;
    let (mem, opts) = recording();
    create_class(&client, "fast", false, "Delete").await;
    mem.knobs().mark_saved_fails = true;
    let first = spawn(client.clone(), mem.clone(), opts.clone());
    create_scheduled_claim(&client, "c1", "fast", None).await;
    let name = wait_bound(&client, "c1").await.metadata.name.unwrap();
    assert!(mem.pending.lock().unwrap().contains_key(&name));
    first.kill().await;
    mem.knobs().mark_saved_fails = false;
    let second = spawn(client.clone(), mem.clone(), opts);
    wait_for("record marked saved by the sweep", || async {
        mem.pending.lock().unwrap().is_empty().then_some(())
    })
    .await;
    assert!(mem.has(&name) && mem.deleted.lock().unwrap().is_empty());
    assert_eq!(second.metrics.pending_volumes_discarded_total.get(), 0);
    // Its deletion is the volume loop's, as for any volume.
    delete_claim(&client, "c1").await;
    wait_pv_gone(&client, &name).await;
    assert!(!mem.has(&name));
    second.stop().await;
}

/// The claim is deleted while its volume is being made (no crash): the PV
/// is saved for a claim that is gone, turns Released and is deleted, or the
/// sweep removes the volume; either way nothing is left.
#[tokio::test]
async fn a_claim_deleted_mid_provision_leaves_nothing() {
    let (_ts, client) = server().await;
    let (mem, opts) = recording();
    create_class(&client, "fast", false, "Delete").await;
    mem.knobs().gate = Some(Gate::AfterCreate);
    let ctrl = spawn(client.clone(), mem.clone(), opts);
    let name = claim_held_at_gate(&client, &mem, "c1", "fast").await;
    delete_claim(&client, "c1").await;
    wait_claim_gone(&client, "c1").await;
    mem.open_gate();
    wait_for("backend volume gone", || async {
        (mem.volume_count() == 0).then_some(())
    })
    .await;
    wait_pv_gone(&client, &name).await;
    assert!(mem.pending.lock().unwrap().is_empty());
    ctrl.stop().await;
}

/// A Retain claim deleted while its volume's provisioning outlasts the
/// grace period: the sweep leaves a volume this process is still working
/// on, so the PV that lands afterwards (Released, Retain) has its volume.
/// (Chaos found this: a PV save retried past the grace period lost its
/// volume to the sweep.)
#[tokio::test]
async fn the_sweep_leaves_a_volume_still_being_provisioned() {
    let (_ts, client) = server().await;
    let (mem, opts) = recording();
    create_class(&client, "keep", false, "Retain").await;
    mem.knobs().gate = Some(Gate::AfterCreate);
    let ctrl = spawn(client.clone(), mem.clone(), opts);
    let name = claim_held_at_gate(&client, &mem, "c1", "keep").await;
    delete_claim(&client, "c1").await;
    wait_claim_gone(&client, "c1").await;
    // Three sweep rounds (1 s apart) after the claim went: at least one
    // saw the record past its 1 s grace, with no PV and no claim.
    let rounds = mem.pending_listed.load(Ordering::SeqCst);
    wait_for("three sweep rounds", || async {
        (mem.pending_listed.load(Ordering::SeqCst) >= rounds + 3).then_some(())
    })
    .await;
    assert!(
        mem.has(&name),
        "the sweep removed a volume being provisioned"
    );
    assert_eq!(ctrl.metrics.pending_volumes_discarded_total.get(), 0);
    mem.open_gate();
    wait_for("the PV saved", || {
        let client = client.clone();
        let name = name.clone();
        async move { pvs(&client).get_opt(&name).await.unwrap() }
    })
    .await;
    wait_for("record marked saved", || async {
        mem.pending.lock().unwrap().is_empty().then_some(())
    })
    .await;
    assert!(mem.has(&name), "a Retain PV keeps its volume");
    assert!(mem.deleted.lock().unwrap().is_empty());
    ctrl.stop().await;
}

/// Two replicas on one backend: the leader dies after a backend volume,
/// before its PV, and the claim is deleted; the standby, once it holds the
/// lease, sweeps the volume (a standby never sweeps), and goes on
/// provisioning without a second volume for anyone.
#[tokio::test]
async fn the_new_leader_sweeps_what_the_old_one_left() {
    let (_ts, client) = server().await;
    create_class(&client, "fast", false, "Delete").await;
    let mem = Mem::new();
    mem.knobs().records = true;
    mem.knobs().gate = Some(Gate::AfterCreate);
    let (mut oa, mut ob) = (elected("a"), elected("b"));
    oa.pending_volume_grace = Duration::from_secs(1);
    ob.pending_volume_grace = Duration::from_secs(1);
    let a = spawn(client.clone(), mem.clone(), oa);
    wait_leader(&a, 1).await;
    let b = spawn(client.clone(), mem.clone(), ob);
    let name = claim_held_at_gate(&client, &mem, "c1", "fast").await;
    a.kill().await;
    mem.open_gate();
    delete_claim(&client, "c1").await;
    wait_claim_gone(&client, "c1").await;
    assert_eq!(b.metrics.pending_volumes_discarded_total.get(), 0);
    wait_leader(&b, 1).await;
    wait_for("the old leader's orphan swept by the new one", || async {
        (!mem.has(&name)).then_some(())
    })
    .await;
    assert_eq!(b.metrics.pending_volumes_discarded_total.get(), 1);
    create_scheduled_claim(&client, "c2", "fast", None).await;
    wait_bound(&client, "c2").await;
    assert_eq!(mem.max_times_created(), 1, "no volume made twice");
    assert_eq!(mem.volume_count(), 1);
    b.stop().await;
}
