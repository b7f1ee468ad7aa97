//! Leader election with kube-lease-manager, which locks Leases with
//! non-forced server-side applies and relies on field-ownership conflicts.

mod common;

use std::time::{Duration, Instant};

use kube_lease_manager::LeaseManagerBuilder;
use kube_testserver::TestServer;

#[tokio::test(flavor = "multi_thread")]
async fn only_one_lease_manager_leads_and_leadership_moves_on_release() {
    let srv = TestServer::start().await.unwrap();
    let mut channels = Vec::new();
    let mut tasks = Vec::new();
    for i in 0..3 {
        let m = LeaseManagerBuilder::new(srv.client().await, "leader")
            .with_identity(format!("member-{i}"))
            .with_duration(3)
            .with_grace(1)
            .build()
            .await
            .unwrap();
        let (rx, task) = m.watch().await;
        channels.push(rx);
        tasks.push(task);
    }
    // Exactly one leads (never two at a sample), and the Lease names it.
    // (No "stable for N seconds" check: on a stalled machine a 3 s lease may
    // legitimately move, and that would fail the test by chance.)
    let deadline = Instant::now() + Duration::from_secs(10);
    let l = loop {
        let leaders: Vec<usize> = channels
            .iter()
            .enumerate()
            .filter(|(_, c)| *c.borrow())
            .map(|(i, _)| i)
            .collect();
        assert!(leaders.len() <= 1, "split brain: {leaders:?}");
        if let [l] = leaders[..] {
            break l;
        }
        assert!(Instant::now() < deadline, "nobody became leader");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let leases: kube::Api<k8s_openapi::api::coordination::v1::Lease> =
        kube::Api::namespaced(srv.client().await, "default");
    let holder = leases
        .get("leader")
        .await
        .unwrap()
        .spec
        .unwrap()
        .holder_identity;
    // The holder is the leader we saw, unless leadership moved in between
    // (then the channel shows the new one: re-read both once).
    let now_leading: Vec<usize> = (0..channels.len())
        .filter(|i| *channels[*i].borrow())
        .collect();
    assert!(
        holder.as_deref() == Some(format!("member-{l}").as_str()) || now_leading != [l],
        "the Lease names {holder:?}, the channels say member-{l}"
    );
    // the leader steps down (closing its channel releases the lease)
    drop(channels.remove(l));
    let _ = tokio::time::timeout(Duration::from_secs(10), tasks.remove(l))
        .await
        .expect("leader task ends");
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let leaders: Vec<usize> = channels
            .iter()
            .enumerate()
            .filter(|(_, c)| *c.borrow())
            .map(|(i, _)| i)
            .collect();
        assert!(leaders.len() <= 1, "split brain: {leaders:?}");
        if leaders.len() == 1 {
            break;
        }
        assert!(Instant::now() < deadline, "no new leader");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(channels);
    for t in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(10), t).await;
    }
}
