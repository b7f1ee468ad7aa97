//! Leader election on a `coordination.k8s.io/v1` Lease (kube-lease-manager).
//!
//! Only the holder of the Lease runs the workers. Losing the Lease (or
//! failing to renew it) stops the workers at once and campaigns again; the
//! process never exits for it (the Go library does, and restart-loops on a
//! flaky API server). On shutdown the workers finish their running
//! reconciles and the Lease is released, so a standby takes over at once
//! instead of waiting for the Lease to expire.

use std::future::Future;
use std::time::Duration;

use kube::Client;
use kube_lease_manager::{LeaseManager, LeaseManagerBuilder};
use tokio_util::sync::CancellationToken;

use prometheus_client::metrics::gauge::Gauge;

/// Leader election settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaderElection {
    /// Lease name (see [`lease_name`]).
    pub lease_name: String,
    /// Namespace of the Lease.
    pub namespace: String,
    /// This replica's holder identity.
    pub identity: String,
    /// How long a Lease is valid after its last renewal.
    pub lease_duration: Duration,
    /// The holder renews (or gives up) this long after its last renewal;
    /// must be shorter than `lease_duration`.
    pub renew_deadline: Duration,
    /// Wait between attempts after an API error.
    pub retry_period: Duration,
}

impl LeaderElection {
    /// Go-library defaults (15 s / 10 s / 2 s) for `provisioner_name`.
    pub fn new(
        provisioner_name: &str,
        namespace: impl Into<String>,
        identity: impl Into<String>,
    ) -> Self {
        Self {
            lease_name: lease_name(provisioner_name),
            namespace: namespace.into(),
            identity: identity.into(),
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }

    /// (duration, grace) in whole seconds, as kube-lease-manager wants them:
    /// grace = lease_duration - renew_deadline, at least 1 s, and the
    /// duration at least grace + 1 s.
    pub fn lease_seconds(&self) -> (u64, u64) {
        let duration = self.lease_duration.as_secs().max(2);
        let renew = self.renew_deadline.as_secs();
        let grace = duration.saturating_sub(renew).clamp(1, duration - 1);
        (duration, grace)
    }
}

/// The Lease name for a provisioner name: lower-cased, every character other
/// than `[a-z0-9-]` replaced by `-`, trimmed of `-`, at most 63 characters
/// (`example.com/hostpath` → `example-com-hostpath`).
pub fn lease_name(provisioner_name: &str) -> String {
    let s: String = provisioner_name
        .to_ascii_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    let s = s.trim_matches('-');
    let s = if s.len() > 63 {
        s[..63].trim_end_matches('-')
    } else {
        s
    };
    if s.is_empty() {
        "external-provisioner".into()
    } else {
        s.to_string()
    }
}

async fn sleep_or_cancel(d: Duration, token: &CancellationToken) {
    tokio::select! {
        _ = tokio::time::sleep(d) => {}
        _ = token.cancelled() => {}
    }
}

async fn build(
    client: &Client,
    le: &LeaderElection,
) -> Result<LeaseManager, kube_lease_manager::LeaseManagerError> {
    let (duration, grace) = le.lease_seconds();
    LeaseManagerBuilder::new(client.clone(), &le.lease_name)
        .with_namespace(&le.namespace)
        .with_identity(&le.identity)
        .with_duration(duration)
        .with_grace(grace)
        .build()
        .await
}

/// Campaign for the Lease until `shutdown`; while leader, run
/// `workers(stop, graceful)`: `stop` is cancelled (and the future dropped)
/// when the Lease is lost, `graceful` (= `shutdown`) on shutdown. `is_leader`
/// is set to 1 while this replica holds the Lease.
pub(crate) async fn run_elected<F, Fut>(
    client: Client,
    le: LeaderElection,
    is_leader: &Gauge,
    shutdown: CancellationToken,
    mut workers: F,
) where
    F: FnMut(CancellationToken, CancellationToken) -> Fut,
    Fut: Future<Output = ()>,
{
    while !shutdown.is_cancelled() {
        // A fresh manager per term: after an error its cached state is stale.
        let manager = tokio::select! {
            m = build(&client, &le) => m,
            _ = shutdown.cancelled() => break,
        };
        let manager = match manager {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(error = %e, lease = %le.lease_name, "cannot set up leader election; retrying");
                sleep_or_cancel(le.retry_period, &shutdown).await;
                continue;
            }
        };
        tracing::info!(lease = %le.lease_name, identity = %le.identity, "campaigning for leadership");
        let became = tokio::select! {
            r = manager.changed() => r,
            _ = shutdown.cancelled() => {
                let _ = manager.release().await;
                break;
            }
        };
        match became {
            Ok(true) => {}
            Ok(false) => continue,
            Err(e) => {
                tracing::warn!(error = %e, "leader election failed; retrying");
                sleep_or_cancel(le.retry_period, &shutdown).await;
                continue;
            }
        }
        tracing::info!(lease = %le.lease_name, identity = %le.identity, "became leader; starting workers");
        is_leader.set(1);
        let stop = CancellationToken::new();
        let mut run = Box::pin(workers(stop.clone(), shutdown.clone()));
        let lost = tokio::select! {
            _ = &mut run => {
                // Workers end on their own only on shutdown.
                false
            }
            r = manager.changed() => {
                match r {
                    Ok(leader) => !leader,
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot renew the lease; stepping down");
                        true
                    }
                }
            }
        };
        if lost {
            stop.cancel();
            drop(run);
            is_leader.set(0);
            tracing::warn!(lease = %le.lease_name, "lost leadership; workers stopped, campaigning again");
            sleep_or_cancel(le.retry_period, &shutdown).await;
            continue;
        }
        is_leader.set(0);
        if let Err(e) = manager.release().await {
            tracing::warn!(error = %e, "releasing the lease failed; it expires on its own");
        }
        break;
    }
    is_leader.set(0);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lease_name_is_sanitised() {
        assert_eq!(lease_name("example.com/hostpath"), "example-com-hostpath");
        assert_eq!(lease_name("Example.COM/NFS_x"), "example-com-nfs-x");
        assert_eq!(lease_name("/a/"), "a");
        assert_eq!(lease_name("///"), "external-provisioner");
        let long = "a".repeat(100);
        assert_eq!(lease_name(&long).len(), 63);
    }

    #[test]
    fn lease_seconds_derive_grace() {
        let le = LeaderElection::new("p", "ns", "id");
        assert_eq!(le.lease_seconds(), (15, 5));
        let le = LeaderElection {
            lease_duration: Duration::from_secs(2),
            renew_deadline: Duration::from_secs(5),
            ..le
        };
        assert_eq!(le.lease_seconds(), (2, 1));
    }
}
