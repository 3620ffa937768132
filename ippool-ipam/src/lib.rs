//! Calico's IPAM as plain data, with no I/O: the datastore's names and block arithmetic, the
//! snapshot the commands reason about and its decoding from API objects, and the pure analyses of
//! it — usage, check, gc planning, pool-delete assessment and the migration planner. It builds for
//! wasm32 as the rules crate does; `ippool-cluster` reads and writes the cluster around it.

pub mod advice;
pub mod allocation;
pub mod auto;
pub mod capacity;
pub mod check;
#[cfg(any(test, feature = "fixtures"))]
pub mod fixtures;
pub mod free_range;
pub mod gc;
pub mod index;
pub mod ipam_ref;
pub mod names;
pub mod plan;
pub mod pool_delete;
pub mod selection;
pub mod snapshot;
pub mod usage;
