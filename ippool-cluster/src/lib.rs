//! Cluster access shared by the kubectl plugin and the admission webhook: Calico's resources over
//! the Kubernetes API, Calico's datastore naming, and Calico's block arithmetic.

pub mod allocation;
pub mod api;
pub mod check;
pub mod discovery;
pub mod gc;
pub mod index;
pub mod ipam_ref;
pub mod migration;
pub mod names;
pub mod plan;
pub mod pool_delete;
pub mod pool_write;
pub mod release;
pub mod request_error;
pub mod resources;
pub mod rest;
pub mod snapshot;
pub mod usage;
pub mod view;
