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
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut leader = None;
    let mut stable_since = None;
    while Instant::now() < deadline {
        let leaders: Vec<usize> = channels
            .iter()
            .enumerate()
            .filter(|(_, c)| *c.borrow())
            .map(|(i, _)| i)
            .collect();
        assert!(leaders.len() <= 1, "split brain: {leaders:?}");
        match (leaders.first().copied(), leader) {
            (Some(l), Some(prev)) if l == prev => {
                if stable_since.is_some_and(|t: Instant| t.elapsed() > Duration::from_secs(4)) {
                    break;
                }
            }
            (Some(l), _) => {
                leader = Some(l);
                stable_since = Some(Instant::now());
            }
            (None, _) => {}
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let l = leader.expect("nobody became leader");
    assert!(
        stable_since.unwrap().elapsed() > Duration::from_secs(4),
        "leadership was not stable"
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
