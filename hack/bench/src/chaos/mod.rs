//! The fault-injection suite: a seeded plan of claims and faults
//! ([`plan`]), leader-elected replicas of the in-memory provisioner that can
//! be killed ([`replicas`]), instances of the real hostpath binary that are
//! SIGKILLed ([`instances`]), both behind one face ([`fleet`]), a recorder of what the API server saw happen
//! ([`observer`]), and the invariants checked once the cluster has settled
//! ([`invariants`]), on either control plane ([`control_plane`]: the test
//! server with its faults, or the real one of `hack/cluster.sh`).

pub mod control_plane;
pub mod fleet;
pub mod instances;
pub mod invariants;
pub mod observer;
pub mod plan;
pub mod replicas;
