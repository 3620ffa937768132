//! calico-sim against a real control plane (tests/harness): every test starts its own control
//! plane and sim, creates pools and workloads through the API, and checks the result through the
//! API — pods' addresses and the IPAM objects Calico's datastore would hold.

mod allocation;
mod blocks;
mod common;
mod selection;
mod tunnels;
mod workloads;
