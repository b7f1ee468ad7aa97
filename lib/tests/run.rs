//! The binary-facing entry points against kube-testserver: `run_until` with
//! parsed `Args` (kubeconfig, leader election, rate-limited client). The
//! client's rate limit is tested on tokio's paused clock in
//! `src/ratelimit.rs`, not against the wall clock here.

mod common;

use std::time::Duration;

use common::*;
use external_storage::args::parse_command_line_from;
use external_storage::Args;
use kube::api::Api;
use kube_testserver::TestServer;
use tokio_util::sync::CancellationToken;

#[tokio::test]
async fn run_until_provisions_from_parsed_args() {
    let ts = TestServer::start().await.unwrap();
    let client = ts.client().await;
    create_class(&client, "fast", false, "Delete").await;
    let args: Args = parse_command_line_from(
        PROVISIONER,
        [
            "prov",
            "--kubeconfig",
            ts.kubeconfig_path().to_str().unwrap(),
            "--metrics-address",
            "",
            "--leader-elect-namespace",
            "default",
            "--retry-interval-start",
            "100ms",
        ],
    )
    .unwrap();
    let mem = Mem::new();
    let token = CancellationToken::new();
    let task = tokio::spawn(external_storage::run_until(
        args,
        Arc::clone(&mem),
        token.clone(),
    ));
    create_scheduled_claim(&client, "c1", "fast", None).await;
    let pv = wait_bound(&client, "c1").await.metadata.name.unwrap();
    assert!(mem.has(&pv));
    // leader election was on: the Lease named after the provisioner exists
    let leases: Api<k8s_openapi::api::coordination::v1::Lease> =
        Api::namespaced(client.clone(), "default");
    let lease = leases.get("example-com-mem").await.unwrap();
    assert!(lease.spec.unwrap().holder_identity.is_some());
    token.cancel();
    tokio::time::timeout(Duration::from_secs(20), task)
        .await
        .expect("run_until returns after shutdown")
        .unwrap()
        .unwrap();
}

use std::sync::Arc;
