//! The deleted-node sweep (`controller::orphans`) against kube-testserver:
//! two node-local instances, one node deleted for good; after the grace
//! period the PV objects pinned to it are deleted (with events, once, by the
//! one instance holding the sweep's Lease), Retain ones and the live node's
//! stay, the backend volume is not touched, and a claim re-created with the
//! same name is provisioned on the node that is left.

mod common;

use std::time::Duration;

use common::*;
use external_storage::annotations as a;
use external_storage::controller::orphans::{orphan_lease_name, OrphanPolicy};
use external_storage::LeaderElection;
use kube::api::{Api, DeleteParams};
use kube_testserver::TestServer;

fn node_local(node: &str) -> external_storage::ControllerOptions {
    let mut o = fast_options();
    o.node_name = Some(node.into());
    o.identity = format!("instance-{node}");
    let mut le = LeaderElection::new(PROVISIONER, "default", o.identity.clone());
    le.lease_name = orphan_lease_name(PROVISIONER);
    le.lease_duration = Duration::from_secs(3);
    le.renew_deadline = Duration::from_secs(2);
    le.retry_period = Duration::from_millis(200);
    o.orphans = OrphanPolicy::new(Duration::from_secs(1), Some(le));
    o
}

/// The events about object `name` with `reason`, as notes.
async fn notes(client: &kube::Client, name: &str, reason: &str) -> Vec<String> {
    let api: Api<k8s_openapi::api::events::v1::Event> = Api::all(client.clone());
    api.list(&Default::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
        .filter(|e| e.reason.as_deref() == Some(reason))
        .filter_map(|e| e.note)
        .collect()
}

#[tokio::test]
async fn the_pvs_of_a_deleted_node_are_deleted_after_the_grace_period() {
    let ts = TestServer::start().await.expect("test server starts");
    let client = ts.client().await;
    create_class(&client, "local", true, "Delete").await;
    create_class(&client, "keep", true, "Retain").await;
    create_node(&client, "n1").await;
    create_node(&client, "n2").await;
    let (m1, m2) = (Mem::new(), Mem::new());
    let c1 = spawn(client.clone(), m1.clone(), node_local("n1"));
    let c2 = spawn(client.clone(), m2.clone(), node_local("n2"));
    create_scheduled_claim(&client, "data", "local", Some("n1")).await;
    create_scheduled_claim(&client, "kept", "keep", Some("n1")).await;
    create_scheduled_claim(&client, "other", "local", Some("n2")).await;
    let gone_pv = wait_bound(&client, "data").await.metadata.name.unwrap();
    let kept_pv = wait_bound(&client, "kept").await.metadata.name.unwrap();
    let other_pv = wait_bound(&client, "other").await.metadata.name.unwrap();

    // Node n1 goes for good, and its instance with it.
    c1.kill().await;
    Api::<k8s_openapi::api::core::v1::Node>::all(client.clone())
        .delete("n1", &DeleteParams::default())
        .await
        .unwrap();

    wait_event(&client, &gone_pv, "DeletedNodeVolumeRemoved").await;
    wait_event(&client, "data", "VolumeOfDeletedNode").await;
    // The event follows the delete: the PV is gone, or held by a finalizer.
    let deleted = pvs(&client).get_opt(&gone_pv).await.unwrap();
    assert!(deleted.is_none_or(|pv| pv.metadata.deletion_timestamp.is_some()));
    // The survivor holds the sweep's Lease and did the one deletion.
    assert_eq!(c2.metrics.deleted_node_sweeper.get(), 1);
    assert_eq!(c2.metrics.deleted_node_volumes_total.get(), 1);
    let pv_notes = notes(&client, &gone_pv, "DeletedNodeVolumeRemoved").await;
    assert_eq!(pv_notes.len(), 1, "one sweeper, one event: {pv_notes:?}");
    assert!(pv_notes[0].contains("n1"), "{}", pv_notes[0]);
    let claim_notes = notes(&client, "data", "VolumeOfDeletedNode").await;
    assert!(
        claim_notes[0].contains("n1") && claim_notes[0].contains("create it again"),
        "{claim_notes:?}"
    );
    // Only the PV object went: the backend volume was not touched.
    assert!(m1.has(&gone_pv), "the data is never touched");
    assert!(m1.deleted.lock().unwrap().is_empty());

    // The claim is re-made under the same name and lands on n2.
    delete_claim(&client, "data").await;
    wait_claim_gone(&client, "data").await;
    wait_pv_gone(&client, &gone_pv).await;
    create_scheduled_claim(&client, "data", "local", Some("n2")).await;
    let new_pv = wait_bound(&client, "data").await.metadata.name.unwrap();
    assert_ne!(new_pv, gone_pv);
    assert!(m2.has(&new_pv));

    // A Retain PV of the deleted node, and the live node's PV, stay.
    let kept = pvs(&client).get(&kept_pv).await.unwrap();
    assert!(kept.metadata.deletion_timestamp.is_none());
    let other = pvs(&client).get(&other_pv).await.unwrap();
    assert!(other.metadata.deletion_timestamp.is_none());
    assert!(notes(&client, &other_pv, "DeletedNodeVolumeRemoved")
        .await
        .is_empty());
    c2.stop().await;
}

/// Waits until the sweep of `r` has run `n` more rounds: a barrier on what
/// the sweep does, not a sleep standing in for one.
async fn rounds(r: &Running, n: u64) {
    let start = r.metrics.deleted_node_sweeps_total.get();
    wait_for(&format!("{n} more sweep rounds"), || async {
        (r.metrics.deleted_node_sweeps_total.get() >= start + n).then_some(())
    })
    .await;
}

async fn missing_hostnames(r: &Running, want: i64) {
    wait_for(&format!("{want} missing hostnames"), || async {
        (r.metrics.deleted_node_missing_hostnames.get() == want).then_some(())
    })
    .await;
}

/// A PV of ours pinned to `hostname`, made directly (no instance serves it).
async fn pinned_pv(client: &kube::Client, name: &str, hostname: &str) {
    let pv: external_storage::PersistentVolume = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": name, "annotations": {a::PROVISIONED_BY: PROVISIONER}},
        "spec": {
            "capacity": {"storage": "1Gi"},
            "accessModes": ["ReadWriteOnce"],
            "persistentVolumeReclaimPolicy": "Delete",
            "hostPath": {"path": format!("/mem/{name}")},
            "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                {"key": a::HOSTNAME_LABEL, "operator": "In", "values": [hostname]}
            ]}]}},
        },
    }))
    .unwrap();
    pvs(client).create(&Default::default(), &pv).await.unwrap();
}

async fn delete_node(client: &kube::Client, name: &str) {
    Api::<k8s_openapi::api::core::v1::Node>::all(client.clone())
        .delete(name, &DeleteParams::default())
        .await
        .unwrap();
}

async fn assert_kept(client: &kube::Client, name: &str) {
    let pv = pvs(client).get(name).await.unwrap();
    assert!(pv.metadata.deletion_timestamp.is_none(), "{name} must stay");
}

/// Conservative by construction: while no Node is known nothing is
/// deleted (however long), and a node that comes back within the grace
/// period keeps its PVs; gone again, its grace period starts over and then
/// its PV goes.
#[tokio::test]
async fn no_node_known_or_a_node_that_returns_deletes_nothing() {
    let ts = TestServer::start().await.expect("test server starts");
    let client = ts.client().await;
    create_node(&client, "n1").await;
    create_node(&client, "n2").await;
    pinned_pv(&client, "on-n1", "n1").await;
    let mut opts = node_local("n2");
    let grace = Duration::from_secs(3);
    opts.orphans = opts.orphans.and_then(|p| OrphanPolicy::new(grace, p.lease));
    let interval = opts.orphans.as_ref().unwrap().interval;
    // Rounds enough to span more than the grace period.
    let span = (grace.as_millis() / interval.as_millis()) as u64 + 2;
    let c = spawn(client.clone(), Mem::new(), opts);
    rounds(&c, 2).await;

    // Every Node gone (a broken list looks like this): nothing is deleted.
    delete_node(&client, "n1").await;
    delete_node(&client, "n2").await;
    rounds(&c, span).await;
    assert_kept(&client, "on-n1").await;
    assert_eq!(c.metrics.deleted_node_missing_hostnames.get(), 0);

    // n2 is back, n1 noticed missing; n1 returns within the grace period.
    create_node(&client, "n2").await;
    missing_hostnames(&c, 1).await;
    create_node(&client, "n1").await;
    missing_hostnames(&c, 0).await;
    rounds(&c, span).await;
    assert_kept(&client, "on-n1").await;

    // Gone again: a new grace period, and then the PV goes.
    let gone_at = std::time::Instant::now();
    delete_node(&client, "n1").await;
    missing_hostnames(&c, 1).await;
    wait_event(&client, "on-n1", "DeletedNodeVolumeRemoved").await;
    // Had the earlier absence counted, the PV would have gone at once.
    assert!(gone_at.elapsed() >= grace, "{:?}", gone_at.elapsed());
    assert!(pvs(&client).get_opt("on-n1").await.unwrap().is_none());
    assert_eq!(c.metrics.deleted_node_volumes_total.get(), 1);
    c.stop().await;
}

#[tokio::test]
async fn off_by_default() {
    assert!(fast_options().orphans.is_none());
}
