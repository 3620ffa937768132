//! calico-sim against a real control plane (tests/harness): its nodes are scheduled onto by
//! kube-scheduler and run Calico's own CNI plugin; these tests check what the sim itself plays — a
//! node's kubelet and container runtime: readiness after the start delay, recovery from `kill -9`
//! with exactly one address per pod, teardown of pods deleted while it was down, DaemonSets and
//! evictions. What Calico does with the addresses is tested in ippool-cluster's `calico` suite.

mod common;
mod restarts;
mod running;
mod workloads;
