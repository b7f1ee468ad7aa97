//! The real `ProvisionController`, over HTTP, against kube-testserver, with
//! the in-memory provisioner of `common`. Every wait has a deadline; where a
//! test must show that something did *not* happen, it first waits for a
//! later event on the same watch stream (a "barrier" claim) instead of
//! sleeping.

mod common;

use std::sync::atomic::Ordering;

use common::*;
use external_storage::annotations as a;
use kube::api::{Patch, PatchParams};
use kube::ResourceExt;
use kube_testserver::{FaultKind, TestServer};
use serde_json::json;

async fn server() -> (TestServer, kube::Client) {
    let ts = TestServer::start().await.expect("test server starts");
    let client = ts.client().await;
    (ts, client)
}

/// Create an Immediate claim in class `barrier` and wait until it is bound:
/// afterwards the controller has processed every earlier watch event.
async fn barrier(client: &kube::Client, name: &str) {
    if kube::Api::<external_storage::StorageClass>::all(client.clone())
        .get_opt("barrier")
        .await
        .unwrap()
        .is_none()
    {
        create_class(client, "barrier", false, "Delete").await;
    }
    create_scheduled_claim(client, name, "barrier", None).await;
    wait_bound(client, name).await;
}

#[tokio::test]
async fn provision_bind_then_delete_on_release() {
    let (_ts, client) = server().await;
    let mem = Mem::new();
    // The Normal `Provisioning` event is off by default (one request per
    // volume); asserted here with it on, and absent by default in
    // `the_provisioning_event_is_optional`.
    let mut opts = fast_options();
    opts.provisioning_event = true;
    let ctrl = spawn(client.clone(), mem.clone(), opts);
    create_class(&client, "fast", false, "Delete").await;
    let c = create_scheduled_claim(&client, "c1", "fast", None).await;
    let pv_name = wait_bound(&client, "c1").await.metadata.name.unwrap();
    assert_eq!(pv_name, pv_name_of(&c));
    assert!(mem.has(&pv_name));

    let pv = pvs(&client).get(&pv_name).await.unwrap();
    assert_eq!(pv.annotations()[a::PROVISIONED_BY], PROVISIONER);
    let spec = pv.spec.clone().unwrap();
    assert_eq!(spec.claim_ref.unwrap().uid, c.metadata.uid);
    assert_eq!(
        spec.persistent_volume_reclaim_policy.as_deref(),
        Some("Delete")
    );
    assert_eq!(spec.storage_class_name.as_deref(), Some("fast"));
    assert_eq!(spec.capacity.unwrap()["storage"].0, "1Gi");
    assert_eq!(spec.host_path.unwrap().path, format!("/mem/{pv_name}"));
    // intent released once the PV is saved
    wait_for("intent finalizer released", || async {
        let c = claims(&client).get("c1").await.ok()?;
        (!has_finalizer(&c, a::PROVISIONING_FINALIZER)).then_some(())
    })
    .await;
    wait_event(&client, "c1", "Provisioning").await;
    wait_event(&client, "c1", "ProvisioningSucceeded").await;

    delete_claim(&client, "c1").await;
    wait_pv_gone(&client, &pv_name).await;
    assert!(!mem.has(&pv_name));
    assert_eq!(
        mem.deleted.lock().unwrap().as_slice(),
        std::slice::from_ref(&pv_name)
    );
    let text = ctrl.metrics.encode();
    assert!(
        text.contains("controller_persistentvolumeclaim_provision_total{class=\"fast\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("controller_persistentvolume_delete_total{class=\"fast\"} 1"),
        "{text}"
    );
    ctrl.stop().await;
}

/// The claim cache fills from a list read in pages (`compact::LIST_PAGE_SIZE`):
/// claims that exist before the controller starts, more than two pages of
/// them, are all provisioned, so no page is lost between continue tokens.
#[tokio::test]
async fn claims_listed_over_several_pages_are_all_provisioned() {
    let page = external_storage::controller::compact::LIST_PAGE_SIZE as usize;
    let (ts, client) = server().await;
    create_class(&client, "fast", false, "Delete").await;
    let names: Vec<String> = (0..2 * page + 7).map(|i| format!("early-{i:03}")).collect();
    for name in &names {
        create_scheduled_claim(&client, name, "fast", None).await;
    }
    let before = ts.stats().count("list", "persistentvolumeclaims");
    let mem = Mem::new();
    let ctrl = spawn(client.clone(), mem.clone(), fast_options());
    for name in &names {
        wait_bound(&client, name).await;
    }
    let lists = ts.stats().count("list", "persistentvolumeclaims") - before;
    assert!(
        lists >= 3,
        "{} claims read in {lists} list request(s)",
        names.len()
    );
    assert_eq!(mem.volumes.lock().unwrap().len(), names.len());
    ctrl.stop().await;
}

#[tokio::test]
async fn the_provisioning_event_is_optional() {
    let (_ts, client) = server().await;
    let ctrl = spawn(client.clone(), Mem::new(), fast_options());
    create_class(&client, "fast", false, "Delete").await;
    create_scheduled_claim(&client, "c1", "fast", None).await;
    wait_bound(&client, "c1").await;
    // Published in the same reconcile, right after `Provisioning` would be.
    wait_event(&client, "c1", "ProvisioningSucceeded").await;
    let reasons = event_reasons(&client, "c1").await;
    assert!(!reasons.iter().any(|r| r == "Provisioning"), "{reasons:?}");
    ctrl.stop().await;
}

fn pv_name_of(c: &external_storage::PersistentVolumeClaim) -> String {
    pv_name(c)
}

#[tokio::test]
async fn retain_keeps_the_backend_volume() {
    let (_ts, client) = server().await;
    let mem = Mem::new();
    let ctrl = spawn(client.clone(), mem.clone(), fast_options());
    create_class(&client, "keep", false, "Retain").await;
    create_scheduled_claim(&client, "c1", "keep", None).await;
    let pv_name = wait_bound(&client, "c1").await.metadata.name.unwrap();
    delete_claim(&client, "c1").await;
    wait_for("PV Released", || async {
        let pv = pvs(&client).get(&pv_name).await.ok()?;
        (pv.status?.phase.as_deref() == Some("Released")).then_some(())
    })
    .await;
    // A Delete-policy claim released after it proves the volume loop has
    // seen the Retain PV's Released update.
    barrier(&client, "b1").await;
    let b_pv = wait_bound(&client, "b1").await.metadata.name.unwrap();
    delete_claim(&client, "b1").await;
    wait_pv_gone(&client, &b_pv).await;
    assert!(pvs(&client).get_opt(&pv_name).await.unwrap().is_some());
    assert!(mem.has(&pv_name));
    ctrl.stop().await;
}

#[tokio::test]
async fn wait_for_first_consumer_waits_for_the_selected_node() {
    let (_ts, client) = server().await;
    let mem = Mem::new();
    create_node(&client, "node-1").await;
    let ctrl = spawn(client.clone(), mem.clone(), fast_options());
    create_class(&client, "late", true, "Delete").await;
    let c = create_scheduled_claim(&client, "c1", "late", None).await;
    barrier(&client, "b1").await;
    assert!(
        !mem.has(&pv_name(&c)),
        "provisioned before a node was selected"
    );
    assert!(pvs(&client).get_opt(&pv_name(&c)).await.unwrap().is_none());

    set_annotation(&client, "c1", a::SELECTED_NODE, "node-1").await;
    let pv_name = wait_bound(&client, "c1").await.metadata.name.unwrap();
    assert_eq!(
        mem.volumes.lock().unwrap()[&pv_name].as_deref(),
        Some("node-1")
    );
    let pv = pvs(&client).get(&pv_name).await.unwrap();
    let affinity = serde_json::to_value(pv.spec.unwrap().node_affinity).unwrap();
    assert!(affinity.to_string().contains("node-1"), "{affinity}");
    ctrl.stop().await;
}

#[tokio::test]
async fn reschedule_drops_the_selected_node() {
    let (_ts, client) = server().await;
    let mem = Mem::new();
    mem.knobs().reschedule_node = Some("full-node".into());
    for node in ["full-node", "node-2"] {
        create_node(&client, node).await;
    }
    let ctrl = spawn(client.clone(), mem.clone(), fast_options());
    create_class(&client, "late", true, "Delete").await;
    let c = create_scheduled_claim(&client, "c1", "late", Some("full-node")).await;
    wait_for("selected-node removed", || async {
        let c = claims(&client).get("c1").await.ok()?;
        let gone = !c.annotations().contains_key(a::SELECTED_NODE);
        (gone && !has_finalizer(&c, a::PROVISIONING_FINALIZER)).then_some(())
    })
    .await;
    wait_event(&client, "c1", "ProvisioningFailed").await;
    assert!(!mem.has(&pv_name(&c)));
    // the scheduler picks another node
    set_annotation(&client, "c1", a::SELECTED_NODE, "node-2").await;
    let pv_name = wait_bound(&client, "c1").await.metadata.name.unwrap();
    assert_eq!(
        mem.volumes.lock().unwrap()[&pv_name].as_deref(),
        Some("node-2")
    );
    ctrl.stop().await;
}

#[tokio::test]
async fn in_progress_is_polled_until_done() {
    let (_ts, client) = server().await;
    let mem = Mem::new();
    mem.knobs().in_progress = 3;
    let ctrl = spawn(client.clone(), mem.clone(), fast_options());
    create_class(&client, "fast", false, "Delete").await;
    create_scheduled_claim(&client, "c1", "fast", None).await;
    let pv_name = wait_bound(&client, "c1").await.metadata.name.unwrap();
    assert!(mem.provision_calls.load(Ordering::SeqCst) >= 4);
    assert_eq!(mem.times_created(&pv_name), 1);
    ctrl.stop().await;
}

#[tokio::test]
async fn pv_save_failure_deletes_the_orphan_then_retries() {
    let (ts, client) = server().await;
    let mem = Mem::new();
    let ctrl = spawn(client.clone(), mem.clone(), fast_options());
    create_class(&client, "fast", false, "Delete").await;
    ts.faults().set_error_rate(
        Some("create"),
        Some("persistentvolumes"),
        FaultKind::InternalError,
        1.0,
    );
    let c = create_scheduled_claim(&client, "c1", "fast", None).await;
    let name = pv_name(&c);
    wait_for("orphan backend volume deleted", || async {
        mem.deleted.lock().unwrap().contains(&name).then_some(())
    })
    .await;
    wait_event(&client, "c1", "ProvisioningFailed").await;
    // the claim keeps its intent while it has no PV
    let cl = claims(&client).get("c1").await.unwrap();
    assert!(has_finalizer(&cl, a::PROVISIONING_FINALIZER));

    ts.faults().clear();
    assert_eq!(wait_bound(&client, "c1").await.metadata.name.unwrap(), name);
    assert!(mem.has(&name));
    // every backend volume made while the PV could not be saved was deleted
    let deleted = mem
        .deleted
        .lock()
        .unwrap()
        .iter()
        .filter(|n| **n == name)
        .count();
    assert!(deleted >= 1);
    assert_eq!(mem.times_created(&name), deleted + 1);
    ctrl.stop().await;
}

#[tokio::test]
async fn pv_save_and_cleanup_failure_is_reported_and_healed() {
    let (ts, client) = server().await;
    let mem = Mem::new();
    mem.knobs().delete_fail = Some("backend down".into());
    let ctrl = spawn(client.clone(), mem.clone(), fast_options());
    create_class(&client, "fast", false, "Delete").await;
    ts.faults().set_error_rate(
        Some("create"),
        Some("persistentvolumes"),
        FaultKind::InternalError,
        1.0,
    );
    let c = create_scheduled_claim(&client, "c1", "fast", None).await;
    wait_event(&client, "c1", "ProvisioningCleanupFailed").await;
    assert!(
        mem.has(&pv_name(&c)),
        "cleanup failed, so the volume is still there"
    );
    ts.faults().clear();
    mem.knobs().delete_fail = None;
    let pv = wait_bound(&client, "c1").await.metadata.name.unwrap();
    // the retry found the same backend volume again: nothing leaked
    assert_eq!(mem.volume_count(), 1);
    assert_eq!(mem.times_created(&pv), 1);
    ctrl.stop().await;
}

#[tokio::test]
async fn claim_deleted_mid_provision_does_not_leak() {
    let (_ts, client) = server().await;
    let mem = Mem::new();
    mem.knobs().gate = Some(Gate::AfterCreate);
    let ctrl = spawn(client.clone(), mem.clone(), fast_options());
    create_class(&client, "fast", false, "Delete").await;
    let name = claim_held_at_gate(&client, &mem, "c1", "fast").await;
    assert!(mem.has(&name));
    delete_claim(&client, "c1").await;
    let cl = claims(&client).get("c1").await.unwrap();
    assert!(
        cl.metadata.deletion_timestamp.is_some(),
        "the intent keeps the claim"
    );
    mem.open_gate();
    wait_claim_gone(&client, "c1").await;
    wait_for("backend volume gone", || async {
        (!mem.has(&name)).then_some(())
    })
    .await;
    wait_pv_gone(&client, &name).await;
    ctrl.stop().await;
}

/// The intent is released beside the workers once the PV is saved; a
/// release the API refuses is tried again, and the claim is not left with
/// its finalizer.
#[tokio::test]
async fn a_failed_intent_release_is_tried_again() {
    let (ts, client) = server().await;
    let mem = Mem::new();
    mem.knobs().gate = Some(Gate::AfterCreate);
    let ctrl = spawn(client.clone(), mem.clone(), fast_options());
    create_class(&client, "fast", false, "Delete").await;
    let name = claim_held_at_gate(&client, &mem, "c1", "fast").await;
    save_pv_with_claim_patches_failing(&ts, &client, &mem, &name).await;
    let held = claims(&client).get("c1").await.unwrap();
    assert!(
        has_finalizer(&held, a::PROVISIONING_FINALIZER),
        "released although every claim patch failed"
    );
    ts.faults().clear();
    wait_for("intent released after the failures", || async {
        let c = claims(&client).get("c1").await.ok()?;
        (!has_finalizer(&c, a::PROVISIONING_FINALIZER)).then_some(())
    })
    .await;
    wait_bound(&client, "c1").await;
    assert_eq!(mem.times_created(&name), 1);
    ctrl.stop().await;
}

/// Kill the controller at a step of provisioning, delete the claim, start a
/// new controller: the backend volume must be gone and the claim released.
async fn killed_at(step: &str) {
    let (ts, client) = server().await;
    let mem = Mem::new(); // the storage backend survives the controller
    create_class(&client, "fast", false, "Delete").await;
    mem.knobs().gate = Some(match step {
        "before-create" => Gate::BeforeCreate,
        _ => Gate::AfterCreate,
    });
    let first = spawn(client.clone(), mem.clone(), fast_options());
    let name = claim_held_at_gate(&client, &mem, "c1", "fast").await;
    let cl = claims(&client).get("c1").await.unwrap();
    assert!(
        has_finalizer(&cl, a::PROVISIONING_FINALIZER),
        "intent recorded first"
    );
    if step == "after-pv-saved" {
        // the PV gets saved, but releasing the intent fails; then crash
        save_pv_with_claim_patches_failing(&ts, &client, &mem, &name).await;
    }
    first.kill().await;
    ts.faults().clear();
    mem.open_gate();
    delete_claim(&client, "c1").await;

    let second = spawn(client.clone(), mem.clone(), fast_options());
    wait_claim_gone(&client, "c1").await;
    wait_for("backend volume gone", || async {
        (!mem.has(&name)).then_some(())
    })
    .await;
    wait_pv_gone(&client, &name).await;
    assert_eq!(
        mem.volume_count(),
        0,
        "leaked: {:?}",
        mem.volumes.lock().unwrap()
    );
    second.stop().await;
}

#[tokio::test]
async fn restart_before_backend_volume_is_made() {
    killed_at("before-create").await;
}

#[tokio::test]
async fn restart_after_backend_volume_before_pv_saved() {
    killed_at("after-create").await;
}

#[tokio::test]
async fn restart_after_pv_saved_before_intent_released() {
    killed_at("after-pv-saved").await;
}

#[tokio::test]
async fn block_claims_need_block_support() {
    let (_ts, client) = server().await;
    let mem = Mem::new();
    let ctrl = spawn(client.clone(), mem.clone(), fast_options());
    create_class(&client, "fast", false, "Delete").await;
    let mut c = claim_json("blk", "fast", None);
    c.spec.as_mut().unwrap().volume_mode = Some("Block".into());
    let c = claims(&client)
        .create(&Default::default(), &c)
        .await
        .unwrap();
    wait_event(&client, "blk", "ProvisioningFailed").await;
    barrier(&client, "b1").await;
    assert!(!mem.has(&pv_name(&c)));
    let cl = claims(&client).get("blk").await.unwrap();
    assert!(!has_finalizer(&cl, a::PROVISIONING_FINALIZER));
    assert!(cl.spec.unwrap().volume_name.is_none());
    ctrl.stop().await;
}

#[tokio::test]
async fn pv_finalizer_is_added_and_removed() {
    let (_ts, client) = server().await;
    let mem = Mem::new();
    let mut opts = fast_options();
    opts.add_finalizer = true;
    let ctrl = spawn(client.clone(), mem.clone(), opts);
    create_class(&client, "fast", false, "Delete").await;
    create_scheduled_claim(&client, "c1", "fast", None).await;
    let name = wait_bound(&client, "c1").await.metadata.name.unwrap();
    let pv = pvs(&client).get(&name).await.unwrap();
    assert!(has_finalizer(&pv, a::PV_FINALIZER));
    delete_claim(&client, "c1").await;
    wait_pv_gone(&client, &name).await;
    assert!(!mem.has(&name));
    ctrl.stop().await;
}

#[tokio::test]
async fn failure_threshold_stops_retries_until_the_claim_changes() {
    let (_ts, client) = server().await;
    let mem = Mem::new();
    mem.knobs().fail = Some("quota exceeded".into());
    let mut opts = fast_options();
    opts.failed_provision_threshold = 2;
    let ctrl = spawn(client.clone(), mem.clone(), opts);
    create_class(&client, "fast", false, "Delete").await;
    create_scheduled_claim(&client, "c1", "fast", None).await;
    wait_for("give-up event", || async {
        let api: kube::Api<k8s_openapi::api::events::v1::Event> = kube::Api::all(client.clone());
        let evs = api.list(&Default::default()).await.ok()?;
        evs.items
            .iter()
            .any(|e| e.note.as_deref().unwrap_or_default().contains("giving up"))
            .then_some(())
    })
    .await;
    assert_eq!(mem.provision_calls.load(Ordering::SeqCst), 2);
    // editing the claim makes it eligible again
    mem.knobs().fail = None;
    claims(&client)
        .patch(
            "c1",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"retry": "now"}}})),
        )
        .await
        .unwrap();
    wait_bound(&client, "c1").await;
    ctrl.stop().await;
}

#[tokio::test]
async fn node_local_instances_serve_only_their_node() {
    let (_ts, client) = server().await;
    create_class(&client, "local", true, "Delete").await;
    create_node(&client, "n1").await;
    create_node(&client, "n2").await;
    let (m1, m2) = (Mem::new(), Mem::new());
    let mut o1 = fast_options();
    o1.node_name = Some("n1".into());
    let mut o2 = fast_options();
    o2.node_name = Some("n2".into());
    let c1 = spawn(client.clone(), m1.clone(), o1);
    let c2 = spawn(client.clone(), m2.clone(), o2);
    let a1 = create_scheduled_claim(&client, "on-n1", "local", Some("n1")).await;
    let a2 = create_scheduled_claim(&client, "on-n2", "local", Some("n2")).await;
    let p1 = wait_bound(&client, "on-n1").await.metadata.name.unwrap();
    let p2 = wait_bound(&client, "on-n2").await.metadata.name.unwrap();
    assert_eq!((p1.clone(), p2.clone()), (pv_name(&a1), pv_name(&a2)));
    assert!(m1.has(&p1) && !m1.has(&p2));
    assert!(m2.has(&p2) && !m2.has(&p1));
    delete_claim(&client, "on-n1").await;
    delete_claim(&client, "on-n2").await;
    wait_pv_gone(&client, &p1).await;
    wait_pv_gone(&client, &p2).await;
    assert_eq!(m1.deleted.lock().unwrap().as_slice(), &[p1]);
    assert_eq!(m2.deleted.lock().unwrap().as_slice(), &[p2]);
    c1.stop().await;
    c2.stop().await;
}

#[tokio::test]
async fn leader_handover_without_double_provisioning() {
    let (_ts, client) = server().await;
    create_class(&client, "fast", false, "Delete").await;
    let (ma, mb) = (Mem::new(), Mem::new());
    let a = spawn(client.clone(), ma.clone(), elected("a"));
    wait_leader(&a, 1).await;
    let b = spawn(client.clone(), mb.clone(), elected("b"));
    let mut first = Vec::new();
    for i in 0..5 {
        first.push(pv_name(
            &create_scheduled_claim(&client, &format!("a{i}"), "fast", None).await,
        ));
    }
    for i in 0..5 {
        wait_bound(&client, &format!("a{i}")).await;
    }
    assert_eq!(b.metrics.is_leader.get(), 0);
    a.stop().await; // releases the lease
    wait_leader(&b, 1).await;
    let mut second = Vec::new();
    for i in 0..5 {
        second.push(pv_name(
            &create_scheduled_claim(&client, &format!("b{i}"), "fast", None).await,
        ));
    }
    for i in 0..5 {
        wait_bound(&client, &format!("b{i}")).await;
    }
    for n in &first {
        assert!(
            ma.has(n) && !mb.has(n),
            "{n} provisioned by the wrong replica"
        );
    }
    for n in &second {
        assert!(
            mb.has(n) && !ma.has(n),
            "{n} provisioned by the wrong replica"
        );
    }
    assert_eq!(ma.max_times_created(), 1);
    assert_eq!(mb.max_times_created(), 1);
    b.stop().await;
}

#[tokio::test]
async fn losing_the_lease_stops_workers_and_campaigns_again() {
    let (ts, client) = server().await;
    create_class(&client, "fast", false, "Delete").await;
    let mem = Mem::new();
    let a = spawn(client.clone(), mem.clone(), elected("a"));
    wait_leader(&a, 1).await;
    ts.faults()
        .set_error_rate(None, Some("leases"), FaultKind::InternalError, 1.0);
    wait_leader(&a, 0).await;
    assert!(
        !a.handle.is_finished(),
        "losing the lease must not end the controller"
    );
    ts.faults().clear();
    wait_leader(&a, 1).await;
    create_scheduled_claim(&client, "c1", "fast", None).await;
    wait_bound(&client, "c1").await;
    a.stop().await;
}

#[tokio::test]
async fn metrics_server_serves_metrics_health_and_readiness() {
    use std::sync::atomic::AtomicBool;
    use std::sync::Arc;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let metrics = Arc::new(external_storage::Metrics::new());
    metrics.is_leader.set(1);
    let ready = Arc::new(AtomicBool::new(false));
    let token = tokio_util::sync::CancellationToken::new();
    let (addr, handle) = external_storage::http::serve(
        "127.0.0.1:0".parse().unwrap(),
        metrics,
        ready.clone(),
        token.clone(),
    )
    .await
    .unwrap();
    async fn get(addr: std::net::SocketAddr, path: &str) -> String {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(
            format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        out
    }
    assert!(get(addr, "/metrics")
        .await
        .contains("controller_is_leader 1"));
    assert!(get(addr, "/healthz").await.starts_with("HTTP/1.1 200"));
    assert!(get(addr, "/readyz").await.starts_with("HTTP/1.1 503"));
    ready.store(true, Ordering::SeqCst);
    assert!(get(addr, "/readyz").await.starts_with("HTTP/1.1 200"));
    token.cancel();
    handle.await.unwrap();
}

#[tokio::test]
async fn infeasible_is_retried_slowly_and_never_given_up() {
    let (_ts, client) = server().await;
    let mem = Mem::new();
    mem.knobs().infeasible = Some("no pool has 1Gi free".into());
    let mut opts = fast_options();
    opts.failed_provision_threshold = 1;
    let ctrl = spawn(client.clone(), mem.clone(), opts);
    create_class(&client, "fast", false, "Delete").await;
    create_scheduled_claim(&client, "c1", "fast", None).await;
    wait_for("two infeasible attempts", || async {
        (mem.provision_calls.load(Ordering::SeqCst) >= 2).then_some(())
    })
    .await;
    wait_event(&client, "c1", "ProvisioningFailed").await;
    mem.knobs().infeasible = None;
    // no edit of the claim: the slow retry alone gets it provisioned
    wait_bound(&client, "c1").await;
    ctrl.stop().await;
}

#[tokio::test]
async fn failed_delete_is_reported_and_retried() {
    let (_ts, client) = server().await;
    let mem = Mem::new();
    let ctrl = spawn(client.clone(), mem.clone(), fast_options());
    create_class(&client, "fast", false, "Delete").await;
    create_scheduled_claim(&client, "c1", "fast", None).await;
    let name = wait_bound(&client, "c1").await.metadata.name.unwrap();
    mem.knobs().delete_fail = Some("backend busy".into());
    delete_claim(&client, "c1").await;
    wait_event(&client, &name, "VolumeFailedDelete").await;
    assert!(
        pvs(&client).get_opt(&name).await.unwrap().is_some(),
        "PV kept while the backend volume exists"
    );
    assert!(mem.has(&name));
    mem.knobs().delete_fail = None;
    wait_pv_gone(&client, &name).await;
    assert!(!mem.has(&name));
    let text = ctrl.metrics.encode();
    assert!(
        text.contains("controller_persistentvolume_delete_failed_total{class=\"fast\"}"),
        "{text}"
    );
    ctrl.stop().await;
}

#[tokio::test]
async fn missing_class_is_reported_then_provisioned_when_created() {
    let (_ts, client) = server().await;
    let mem = Mem::new();
    let ctrl = spawn(client.clone(), mem.clone(), fast_options());
    create_class(&client, "other", false, "Delete").await; // the cache has synced
    create_scheduled_claim(&client, "c1", "later", None).await;
    wait_event(&client, "c1", "ProvisioningFailed").await;
    create_class(&client, "later", false, "Delete").await;
    wait_bound(&client, "c1").await;
    ctrl.stop().await;
}

#[tokio::test]
async fn released_pv_whose_claim_still_exists_is_not_deleted() {
    let (_ts, client) = server().await;
    let mem = Mem::new();
    let ctrl = spawn(client.clone(), mem.clone(), fast_options());
    let mut c = claim_json("in-use", "manual", None);
    c.metadata.annotations = None; // not ours: only the PV matters here
    let c = claims(&client)
        .create(&Default::default(), &c)
        .await
        .unwrap();
    let pv: external_storage::PersistentVolume = serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": "manual-pv", "annotations": {a::PROVISIONED_BY: PROVISIONER}},
        "spec": {
            "capacity": {"storage": "1Gi"},
            "accessModes": ["ReadWriteOnce"],
            "persistentVolumeReclaimPolicy": "Delete",
            "storageClassName": "manual",
            "hostPath": {"path": "/mem/manual-pv"},
            "claimRef": {"namespace": "default", "name": "in-use", "uid": c.metadata.uid},
        },
    }))
    .unwrap();
    pvs(&client).create(&Default::default(), &pv).await.unwrap();
    pvs(&client)
        .patch_status(
            "manual-pv",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"phase": "Released"}})),
        )
        .await
        .unwrap();
    wait_for("PV Released", || async {
        let pv = pvs(&client).get("manual-pv").await.ok()?;
        (pv.status?.phase.as_deref() == Some("Released")).then_some(())
    })
    .await;
    // a Delete-policy volume released after it proves the loop saw this PV
    barrier(&client, "b1").await;
    let b_pv = wait_bound(&client, "b1").await.metadata.name.unwrap();
    delete_claim(&client, "b1").await;
    wait_pv_gone(&client, &b_pv).await;
    assert!(pvs(&client).get_opt("manual-pv").await.unwrap().is_some());
    assert!(!mem
        .deleted
        .lock()
        .unwrap()
        .contains(&"manual-pv".to_string()));
    ctrl.stop().await;
}

/// A released, Delete-policy PV of ours whose claim is gone, with `labels`.
async fn released_pv(client: &kube::Client, name: &str, labels: serde_json::Value) {
    let pv: external_storage::PersistentVolume = serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": name, "labels": labels, "annotations": {a::PROVISIONED_BY: PROVISIONER}},
        "spec": {
            "capacity": {"storage": "1Gi"},
            "accessModes": ["ReadWriteOnce"],
            "persistentVolumeReclaimPolicy": "Delete",
            "storageClassName": "static",
            "hostPath": {"path": format!("/mem/{name}")},
            "claimRef": {"namespace": "default", "name": format!("gone-{name}"), "uid": "0000"},
        },
    }))
    .unwrap();
    pvs(client).create(&Default::default(), &pv).await.unwrap();
    pvs(client)
        .patch_status(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"phase": "Released"}})),
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn static_mode_watches_no_claims_and_only_the_selected_pvs() {
    let (_ts, client) = server().await;
    let mem = Mem::new();
    let mut opts = fast_options();
    opts.watch_claims = false;
    opts.pv_label_selector = Some("example.com/node=n1".into());
    let ctrl = spawn(client.clone(), mem.clone(), opts);
    create_class(&client, "fast", false, "Delete").await;
    create_scheduled_claim(&client, "c1", "fast", None).await;
    // Outside the selector: another node's PV, and one without the label.
    released_pv(&client, "other-node", json!({"example.com/node": "n2"})).await;
    released_pv(&client, "unlabelled", json!({})).await;
    // Inside it, created after them on the same watch: once these two are
    // deleted, the controller would have seen the others too.
    for barrier in ["mine-1", "mine-2"] {
        released_pv(&client, barrier, json!({"example.com/node": "n1"})).await;
        wait_pv_gone(&client, barrier).await;
    }
    for name in ["other-node", "unlabelled"] {
        assert!(
            pvs(&client).get_opt(name).await.unwrap().is_some(),
            "{name} deleted"
        );
    }
    let deleted = mem.deleted.lock().unwrap().clone();
    assert_eq!(deleted, ["mine-1", "mine-2"]);
    // No claim loop: the claim of our class gets no volume and no event.
    let claim = claims(&client).get("c1").await.unwrap();
    assert_eq!(mem.volume_count(), 0);
    assert!(pvs(&client)
        .get_opt(&pv_name(&claim))
        .await
        .unwrap()
        .is_none());
    assert!(event_reasons(&client, "c1").await.is_empty());
    assert!(
        !has_finalizer(&claim, a::PROVISIONING_FINALIZER),
        "no intent finalizer"
    );
    ctrl.stop().await;
}
