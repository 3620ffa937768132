//! The harness against the real control plane and calico-sim: one test binary, so the suites
//! link once.

mod control_plane;
mod crds;
mod sim;
