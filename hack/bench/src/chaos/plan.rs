//! The chaos plan: every claim and every fault with its moment, derived
//! from one seed, so a failing run is replayed with `--seed`.
//!
//! Only the plan is seeded. The test server draws its 10 % API errors from
//! its own unseeded generator and thread scheduling varies, so a replay
//! repeats the same workload and fault schedule, not the exact interleaving.

use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// The sizes of a plan.
#[derive(Debug, Clone)]
pub struct PlanConfig {
    /// Claims created over the run.
    pub claims: usize,
    /// Length of the fault phase; claims are created in its first 80 %.
    pub duration: Duration,
    /// Fraction of claims of the `Retain` class (the rest are `Delete`).
    pub retain_fraction: f64,
    /// Fraction of claims deleted during the run.
    pub delete_fraction: f64,
    /// Longest wait between a claim's creation and its deletion.
    pub max_lifetime: Duration,
    /// Leader kills.
    pub leader_kills: usize,
    /// Latency spikes.
    pub latency_spikes: usize,
    /// Moments when every watch is dropped.
    pub watch_drops: usize,
    /// Test-server restarts.
    pub restarts: usize,
}

/// One claim of the plan.
#[derive(Debug, Clone, PartialEq)]
pub struct ClaimPlan {
    /// Claim name.
    pub name: String,
    /// `Retain` class (else `Delete`).
    pub retain: bool,
    /// Delete the claim this long after it was created, if at all.
    pub delete_after: Option<Duration>,
}

/// Something the driver does at a moment.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Create (and maybe later delete) a claim.
    Claim(ClaimPlan),
    /// Add this latency to every request (zero ends a spike).
    Latency(Duration),
    /// Close every open watch.
    DropWatches,
    /// Stop serving for `down`, then serve again with the same data.
    RestartServer {
        /// How long the server is away.
        down: Duration,
    },
    /// Abort the leader's controller without releasing its Lease, and start
    /// a replacement replica after `respawn_after`.
    KillLeader {
        /// Delay before the replacement starts.
        respawn_after: Duration,
    },
}

/// An action and its offset from the start of the run.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// Offset from the start.
    pub at: Duration,
    /// What to do.
    pub action: Action,
}

fn within(rng: &mut StdRng, lo: Duration, hi: Duration) -> Duration {
    if hi <= lo {
        return lo;
    }
    Duration::from_millis(rng.random_range(lo.as_millis() as u64..hi.as_millis() as u64))
}

/// The plan for `seed`, ordered by time.
pub fn plan(seed: u64, cfg: &PlanConfig) -> Vec<Step> {
    let mut rng = StdRng::seed_from_u64(seed);
    let d = cfg.duration;
    let mut steps = Vec::new();
    for i in 0..cfg.claims {
        let at = within(&mut rng, Duration::ZERO, d.mul_f64(0.8));
        let retain = rng.random_bool(cfg.retain_fraction);
        let delete_after = rng
            .random_bool(cfg.delete_fraction)
            .then(|| within(&mut rng, Duration::ZERO, cfg.max_lifetime));
        steps.push(Step {
            at,
            action: Action::Claim(ClaimPlan {
                name: format!("chaos-{i:05}"),
                retain,
                delete_after,
            }),
        });
    }
    for _ in 0..cfg.latency_spikes {
        let at = within(&mut rng, Duration::ZERO, d);
        let latency = within(
            &mut rng,
            Duration::from_millis(100),
            Duration::from_millis(1000),
        );
        let length = within(&mut rng, Duration::from_secs(1), Duration::from_secs(4));
        steps.push(Step {
            at,
            action: Action::Latency(latency),
        });
        steps.push(Step {
            at: at + length,
            action: Action::Latency(Duration::ZERO),
        });
    }
    for _ in 0..cfg.watch_drops {
        let at = within(&mut rng, Duration::ZERO, d);
        steps.push(Step {
            at,
            action: Action::DropWatches,
        });
    }
    for _ in 0..cfg.restarts {
        let at = within(&mut rng, d.mul_f64(0.2), d.mul_f64(0.8));
        let down = within(&mut rng, Duration::from_millis(500), Duration::from_secs(3));
        steps.push(Step {
            at,
            action: Action::RestartServer { down },
        });
    }
    for _ in 0..cfg.leader_kills {
        let at = within(&mut rng, Duration::from_secs(1), d);
        let respawn_after = within(&mut rng, Duration::from_millis(200), Duration::from_secs(2));
        steps.push(Step {
            at,
            action: Action::KillLeader { respawn_after },
        });
    }
    steps.sort_by_key(|s| s.at);
    steps
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> PlanConfig {
        PlanConfig {
            claims: 50,
            duration: Duration::from_secs(20),
            retain_fraction: 0.5,
            delete_fraction: 0.6,
            max_lifetime: Duration::from_secs(5),
            leader_kills: 3,
            latency_spikes: 2,
            watch_drops: 4,
            restarts: 1,
        }
    }

    #[test]
    fn same_seed_same_plan_and_sorted() {
        let a = plan(7, &cfg());
        assert_eq!(a, plan(7, &cfg()));
        assert_ne!(a, plan(8, &cfg()));
        assert!(a.windows(2).all(|w| w[0].at <= w[1].at));
        let claims = a
            .iter()
            .filter(|s| matches!(s.action, Action::Claim(_)))
            .count();
        assert_eq!(claims, 50);
        let kills = a
            .iter()
            .filter(|s| matches!(s.action, Action::KillLeader { .. }))
            .count();
        assert_eq!(kills, 3);
    }
}
