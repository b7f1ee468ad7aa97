//! Per-object retry bookkeeping: exponential backoff that resets on success,
//! failure thresholds, and the slow lane for infeasible requests.
//!
//! kube-runtime's `Controller` deduplicates work per object and never runs
//! two reconciles of one object at once, but it keeps no failure counts; this
//! module does, keyed by object (namespace/name), in memory. The math is a
//! pure function ([`BackoffPolicy::delay`]) so it is tested without time.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

/// Backoff parameters for one kind of work (claims or volumes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BackoffPolicy {
    /// Delay after the first failure.
    pub base: Duration,
    /// Upper bound of any delay.
    pub max: Duration,
    /// Give up after this many consecutive failures; 0 retries forever.
    pub threshold: u32,
    /// Fixed delay for infeasible requests (never counted as failures).
    pub infeasible: Duration,
}

/// What to do after a failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Retry {
    /// Try again after this delay.
    After(Duration),
    /// The threshold is reached: stop until the object changes.
    GiveUp {
        /// Consecutive failures so far.
        failures: u32,
    },
}

impl BackoffPolicy {
    /// Delay after `failures` consecutive failures (1 = first failure):
    /// `base * 2^(failures-1)`, capped at `max`.
    pub fn delay(&self, failures: u32) -> Duration {
        let exp = failures.saturating_sub(1).min(31);
        let factor = 1u64 << exp;
        let nanos = (self.base.as_nanos()).saturating_mul(u128::from(factor));
        let capped = nanos.min(self.max.as_nanos());
        Duration::from_nanos(u64::try_from(capped).unwrap_or(u64::MAX))
    }

    /// The retry decision after `failures` consecutive failures.
    pub fn after_failure(&self, failures: u32) -> Retry {
        if self.threshold != 0 && failures >= self.threshold {
            Retry::GiveUp { failures }
        } else {
            Retry::After(self.delay(failures))
        }
    }
}

#[derive(Debug, Default)]
struct Entry {
    failures: u32,
    polls: u32,
    gave_up_at: Option<String>,
}

/// Failure counts per object key.
#[derive(Debug)]
pub struct Backoffs {
    policy: BackoffPolicy,
    entries: Mutex<HashMap<String, Entry>>,
}

impl Backoffs {
    /// Empty bookkeeping with this policy.
    pub fn new(policy: BackoffPolicy) -> Self {
        Self {
            policy,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// The policy in use.
    pub fn policy(&self) -> &BackoffPolicy {
        &self.policy
    }

    fn with<R>(&self, f: impl FnOnce(&mut HashMap<String, Entry>) -> R) -> R {
        let mut g = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut g)
    }

    /// Record a failure of `key` at `resource_version`; returns the count and
    /// the retry decision.
    pub fn failure(&self, key: &str, resource_version: &str) -> Retry {
        self.with(|m| {
            let e = m.entry(key.to_string()).or_default();
            e.failures = e.failures.saturating_add(1);
            let r = self.policy.after_failure(e.failures);
            if matches!(r, Retry::GiveUp { .. }) {
                e.gave_up_at = Some(resource_version.to_string());
            }
            r
        })
    }

    /// Delay before polling an in-progress operation again: exponential in
    /// the number of polls, never a failure.
    pub fn in_progress(&self, key: &str) -> Duration {
        self.with(|m| {
            let e = m.entry(key.to_string()).or_default();
            e.polls = e.polls.saturating_add(1);
            self.policy.delay(e.polls)
        })
    }

    /// Delay for an infeasible request.
    pub fn infeasible(&self, key: &str) -> Duration {
        self.with(|m| {
            m.entry(key.to_string()).or_default();
        });
        self.policy.infeasible
    }

    /// Whether `key` was given up at exactly this resource version (a change
    /// of the object makes it eligible again, and resets its count).
    pub fn given_up(&self, key: &str, resource_version: &str) -> bool {
        self.with(|m| match m.get(key) {
            Some(Entry {
                gave_up_at: Some(rv),
                ..
            }) if rv == resource_version => true,
            Some(Entry {
                gave_up_at: Some(_),
                ..
            }) => {
                m.remove(key);
                false
            }
            _ => false,
        })
    }

    /// Give up on `key` at `resource_version` right away (a failure a retry
    /// would only repeat): [`given_up`](Self::given_up) holds until the
    /// object changes.
    pub fn give_up(&self, key: &str, resource_version: &str) {
        self.with(|m| {
            let e = m.entry(key.to_string()).or_default();
            e.failures = e.failures.saturating_add(1);
            e.gave_up_at = Some(resource_version.to_string());
        })
    }

    /// Forget `key` (success, or the object is gone).
    pub fn reset(&self, key: &str) {
        self.with(|m| {
            m.remove(key);
        });
    }

    /// Number of objects waiting for a retry (including given-up ones).
    pub fn len(&self) -> usize {
        self.with(|m| m.len())
    }

    /// Whether no object is waiting for a retry.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(threshold: u32) -> BackoffPolicy {
        BackoffPolicy {
            base: Duration::from_secs(15),
            max: Duration::from_secs(1000),
            threshold,
            infeasible: Duration::from_secs(600),
        }
    }

    #[test]
    fn delay_doubles_and_caps() {
        let p = policy(0);
        assert_eq!(p.delay(1), Duration::from_secs(15));
        assert_eq!(p.delay(2), Duration::from_secs(30));
        assert_eq!(p.delay(3), Duration::from_secs(60));
        assert_eq!(p.delay(7), Duration::from_secs(960));
        assert_eq!(p.delay(8), Duration::from_secs(1000));
        assert_eq!(p.delay(u32::MAX), Duration::from_secs(1000));
        assert_eq!(p.delay(0), Duration::from_secs(15));
    }

    #[test]
    fn threshold_zero_retries_forever() {
        let p = policy(0);
        assert_eq!(
            p.after_failure(10_000),
            Retry::After(Duration::from_secs(1000))
        );
    }

    #[test]
    fn threshold_gives_up_at_count() {
        let p = policy(3);
        assert!(matches!(p.after_failure(2), Retry::After(_)));
        assert_eq!(p.after_failure(3), Retry::GiveUp { failures: 3 });
    }

    #[test]
    fn success_resets_count() {
        let b = Backoffs::new(policy(0));
        assert_eq!(b.failure("a", "1"), Retry::After(Duration::from_secs(15)));
        assert_eq!(b.failure("a", "1"), Retry::After(Duration::from_secs(30)));
        b.reset("a");
        assert_eq!(b.failure("a", "1"), Retry::After(Duration::from_secs(15)));
        assert_eq!(b.len(), 1);
    }

    #[test]
    fn given_up_until_object_changes() {
        let b = Backoffs::new(policy(2));
        b.failure("a", "5");
        assert_eq!(b.failure("a", "5"), Retry::GiveUp { failures: 2 });
        assert!(b.given_up("a", "5"));
        assert!(!b.given_up("a", "6"));
        // the change reset the count
        assert_eq!(b.failure("a", "6"), Retry::After(Duration::from_secs(15)));
    }

    #[test]
    fn a_final_failure_gives_up_at_once_even_without_a_threshold() {
        let b = Backoffs::new(policy(0));
        b.give_up("a", "7");
        assert!(b.given_up("a", "7"));
        assert!(!b.given_up("a", "8"));
        assert_eq!(b.failure("a", "8"), Retry::After(Duration::from_secs(15)));
    }

    #[test]
    fn in_progress_and_infeasible_do_not_count() {
        let b = Backoffs::new(policy(1));
        assert_eq!(b.in_progress("a"), Duration::from_secs(15));
        assert_eq!(b.in_progress("a"), Duration::from_secs(30));
        assert_eq!(b.infeasible("a"), Duration::from_secs(600));
        assert!(!b.given_up("a", "1"));
        assert_eq!(b.failure("a", "1"), Retry::GiveUp { failures: 1 });
    }
}
