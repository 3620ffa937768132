//! Test fixture for everything that touches a cluster: a real Kubernetes control plane
//! (`tests/cluster/up`: etcd, kube-apiserver, kube-controller-manager, kube-scheduler,
//! calico-kube-controllers, Calico's CRDs, all built by `tests/upstream/build`) and `calico-sim`
//! (fake nodes whose pods get their addresses from Calico's CNI plugin), torn down when dropped —
//! also when a test panics.
//!
//! [`workloads`] has the steps cluster tests take on them.
//!
//! Pools, blocks, affinities and nodes are cluster-scoped, so namespaces do not isolate tests:
//! a test that touches pools starts its own [`ControlPlane`] (each has its own etcd).
//!
//! Without the upstream binaries, [`ControlPlane::start`] fails and says how to build them: a
//! cluster test never passes without running. See `tests/cluster/README.md`.

mod calicoctl;
mod control_plane;
pub mod crds;
mod error;
mod fault_proxy;
mod judge;
mod outage;
mod process;
mod runtime;
mod sim;
mod wait;
pub mod workloads;
mod workspace_bin;

use std::path::PathBuf;

pub use calicoctl::{IpamCheck, IpamShow, Usage};
pub use control_plane::{ControlPlane, ControlPlaneOptions, upstream_binaries};
pub use error::HarnessError;
pub use fault_proxy::FaultProxy;
pub use judge::Expected;
pub use outage::StoppedApiServer;
pub use process::RecordedProcess;
pub use sim::{Sim, SimOptions};
pub use wait::{wait_for, wait_for_all};
pub use workspace_bin::{try_workspace_bin, workspace_bin};

/// The root of this repository (the Cargo workspace).
///
/// Found at run time from the working directory (cargo runs tests in their package's directory),
/// because a test binary built in one clone may be reused from a shared target directory by another
/// clone whose sources are older; the compile-time path is the fallback.
pub fn repo_root() -> PathBuf {
    let is_root = |dir: &std::path::Path| dir.join("tests/cluster/up").is_file();
    std::env::current_dir()
        .ok()
        .and_then(|cwd| cwd.ancestors().find(|dir| is_root(dir)).map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../..")))
}
