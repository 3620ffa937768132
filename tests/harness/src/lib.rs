//! Test fixture for everything that touches a cluster: a real Kubernetes control plane
//! (`tests/cluster/up`: etcd, kube-apiserver, kube-controller-manager, the Calico CRDs) and
//! `calico-sim` (fake nodes, scheduling, Calico IPAM), torn down when dropped — also when a test
//! panics.
//!
//! Pools, blocks, affinities and nodes are cluster-scoped, so namespaces do not isolate tests:
//! a test that touches pools starts its own [`ControlPlane`] (each has its own etcd).
//!
//! Without control-plane binaries, [`ControlPlane::start`] prints a `SKIPPED …` notice and returns
//! `Ok(None)`; with `CI` set that is an error. See `tests/cluster/README.md`.

mod control_plane;
pub mod crds;
mod error;
mod process;
mod runtime;
mod sim;
mod wait;
mod workspace_bin;

use std::path::PathBuf;

pub use control_plane::ControlPlane;
pub use error::HarnessError;
pub use process::RecordedProcess;
pub use sim::{Sim, SimOptions};
pub use wait::{wait_for, wait_for_all};
pub use workspace_bin::{try_workspace_bin, workspace_bin};

/// The root of this repository (the Cargo workspace).
pub fn repo_root() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}
