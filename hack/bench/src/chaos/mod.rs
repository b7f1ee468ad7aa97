//! The fault-injection suite: a seeded plan of claims and faults
//! ([`plan`]), leader-elected replicas of the in-memory provisioner that can
//! be killed ([`replicas`]), a recorder of what the API server saw happen
//! ([`observer`]), and the invariants checked once the cluster has settled
//! ([`invariants`]).

pub mod invariants;
pub mod observer;
pub mod plan;
pub mod replicas;
