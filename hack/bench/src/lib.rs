//! `external-storage-bench`: the project's own numbers and its fault-injection
//! suite.
//!
//! Two binaries stand on this library:
//! - `bench` measures the provisioning controller against `kube-testserver`
//!   (throughput, claim → Bound latency, API requests per volume, peak RSS
//!   and start-up time of the real hostpath binary) and prints one table per
//!   run; with `--cluster real` it runs the hostpath binary and the Go
//!   anchor (`anchor/`, on sig-storage-lib-external-provisioner) side by
//!   side on the real control plane of `hack/cluster.sh` ([`real`]); with
//!   `--local-volume N` it times the local-volume binary discovering N
//!   mounted directories ([`local_volume`]); with `--nfs N` it runs the nfs
//!   binary and its NFS-Ganesha through N claims and a restart over their
//!   exports ([`nfs`]);
//! - `chaos` runs two leader-elected replicas over one in-memory backend while
//!   claims come and go under injected API errors, latency, dropped watches, a
//!   server restart and leader kills, then checks the invariants a user relies
//!   on (nothing leaked, nothing provisioned twice, no data deleted that
//!   should have been kept, no claim left Pending without a reason); with
//!   `--cluster real` the same plan, without the API faults, runs on the
//!   real control plane of `hack/cluster.sh` (kills and a kube-apiserver
//!   restart), checked through its API.
//!
//! Every number printed is measured in the run that prints it; every random
//! choice comes from one seeded generator whose seed is printed.

pub mod anchor;
pub mod backend;
pub mod chaos;
pub mod hostpath;
pub mod latency;
pub mod local_volume;
pub mod machine;
pub mod nfs;
pub mod objects;
pub mod preload;
pub mod real;
pub mod requests;
pub mod table;
pub mod throughput;
