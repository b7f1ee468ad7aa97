//! A map whose entries are dropped once unused for a while, for per-object
//! bookkeeping that must not grow with every object ever seen: event
//! recorders ([`crate::events`]) and the claim versions the controller
//! superseded itself and the PVs it saved (`controller::own_writes`).
//!
//! Expired entries are swept whenever the map has doubled since the last
//! sweep, so each insert costs amortized O(1) and nothing runs in the
//! background. (A cache crate such as moka does this and much more, with
//! its own maintenance threads; two small maps behind a mutex need less.)

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Entries keyed by object, each dropped after `ttl` without use.
#[derive(Debug)]
pub(crate) struct ExpiringMap<V> {
    entries: HashMap<String, (V, Instant)>,
    ttl: Duration,
    sweep_at: usize,
}

impl<V> ExpiringMap<V> {
    /// The map's size below which it is never swept.
    pub(crate) const MIN_SWEEP: usize = 1024;

    /// An empty map whose entries live `ttl` after their last use.
    pub(crate) fn new(ttl: Duration) -> Self {
        Self {
            entries: HashMap::new(),
            ttl,
            sweep_at: Self::MIN_SWEEP,
        }
    }

    /// Drops the expired entries once the map has doubled since the last sweep.
    fn sweep_if_grown(&mut self, now: Instant) {
        if self.entries.len() >= self.sweep_at {
            let ttl = self.ttl;
            self.entries
                .retain(|_, (_, used)| now.saturating_duration_since(*used) < ttl);
            self.sweep_at = (self.entries.len() * 2).max(Self::MIN_SWEEP);
        }
    }

    /// Sets the entry for `key` to `value`, used at `now`.
    pub(crate) fn insert(&mut self, key: &str, now: Instant, value: V) {
        self.sweep_if_grown(now);
        self.entries.insert(key.to_string(), (value, now));
    }

    /// The entry for `key`, made by `make` if there is none (or it expired);
    /// marks it used at `now`.
    pub(crate) fn get_or_insert_with(
        &mut self,
        key: &str,
        now: Instant,
        make: impl FnOnce() -> V,
    ) -> &mut V {
        self.sweep_if_grown(now);
        if self
            .entries
            .get(key)
            .is_some_and(|(_, used)| now.saturating_duration_since(*used) >= self.ttl)
        {
            self.entries.remove(key);
        }
        let entry = self
            .entries
            .entry(key.to_string())
            .or_insert_with(|| (make(), now));
        entry.1 = now;
        &mut entry.0
    }

    /// The live entry for `key`, if any (not marked used).
    pub(crate) fn get(&self, key: &str, now: Instant) -> Option<&V> {
        self.entries
            .get(key)
            .filter(|(_, used)| now.saturating_duration_since(*used) < self.ttl)
            .map(|(v, _)| v)
    }

    /// Drops the entry for `key`.
    pub(crate) fn remove(&mut self, key: &str) {
        self.entries.remove(key);
    }

    /// Entries held, expired ones not yet swept included.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TTL: Duration = Duration::from_secs(60);

    #[test]
    fn an_entry_is_made_once_and_kept_while_used() {
        let mut m = ExpiringMap::new(TTL);
        let t0 = Instant::now();
        *m.get_or_insert_with("a", t0, || 1) += 10;
        assert_eq!(*m.get_or_insert_with("a", t0 + TTL / 2, || 99), 11);
        // used at t0 + TTL/2, so still alive at t0 + TTL
        assert_eq!(m.get("a", t0 + TTL), Some(&11));
        assert_eq!(m.get("b", t0), None);
    }

    #[test]
    fn insert_replaces_the_entry_and_renews_it() {
        let mut m = ExpiringMap::new(TTL);
        let t0 = Instant::now();
        m.insert("a", t0, 1);
        m.insert("a", t0 + TTL / 2, 2);
        assert_eq!(m.get("a", t0 + TTL), Some(&2));
        assert_eq!(m.len(), 1);
    }

    #[test]
    fn an_expired_entry_is_made_anew_and_not_returned() {
        let mut m = ExpiringMap::new(TTL);
        let t0 = Instant::now();
        m.get_or_insert_with("a", t0, || 1);
        assert_eq!(m.get("a", t0 + TTL), None);
        assert_eq!(*m.get_or_insert_with("a", t0 + TTL, || 2), 2);
    }

    #[test]
    fn the_map_is_swept_when_it_doubles() {
        let mut m = ExpiringMap::new(TTL);
        let t0 = Instant::now();
        let later = t0 + TTL + Duration::from_secs(1);
        m.get_or_insert_with("recent", later - Duration::from_secs(1), || 0);
        for i in 0..ExpiringMap::<u32>::MIN_SWEEP - 1 {
            m.get_or_insert_with(&format!("old{i}"), t0, || 0);
        }
        assert_eq!(m.len(), ExpiringMap::<u32>::MIN_SWEEP);
        m.get_or_insert_with("new", later, || 0);
        assert_eq!(m.len(), 2, "only recent and new remain");
        assert_eq!(m.sweep_at, ExpiringMap::<u32>::MIN_SWEEP);
        m.remove("new");
        assert_eq!(m.len(), 1);
    }
}
