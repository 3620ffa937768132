//! Calico's own behaviour, the behaviour this crate's model of Calico (naming, blocks, pool
//! selection, tunnel addresses) is built on, checked against Calico's real code: every test starts
//! a control plane and a calico-sim, whose pods get their addresses from Calico's `calico` CNI
//! plugin and `calico-ipam`, and whose nodes get their tunnel addresses from calico-node's own
//! allocator; then it reads what Calico wrote through the API.

mod allocation;
mod blocks;
mod common;
mod selection;
mod tunnels;
