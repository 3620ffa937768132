//! The checks on snapshots built in code.

use super::*;
use crate::fixtures::*;

/// A consistent cluster: one pool, a pod and a node tunnel address, both allocated.
fn clean() -> Snapshot {
    Snapshot {
        pools: vec![pool("default", "10.0.0.0/24", Some(26), false)],
        blocks: vec![block(
            "10.0.0.0/26",
            Some("sim-1"),
            &[
                (
                    0,
                    "ipip-tunnel-addr-sim-1",
                    &[("node", "sim-1"), ("type", "ipipTunnelAddress")],
                ),
                (2, "k8s-pod-network.c1", &workload("shop", "web-1", "sim-1")),
            ],
        )],
        handles: vec![
            handle("ipip-tunnel-addr-sim-1", &[("10.0.0.0/26", 1)]),
            handle("k8s-pod-network.c1", &[("10.0.0.0/26", 1)]),
        ],
        pods: vec![pod("shop", "web-1", "sim-1", "10.0.0.2", "c1")],
        nodes: vec![node("sim-1")],
        ..Snapshot::default()
    }
}

fn kinds(report: &CheckReport) -> Vec<ProblemKind> {
    report.problems.iter().map(|p| p.kind).collect()
}

#[test]
fn a_consistent_cluster_has_no_problems() {
    let report = check(&clean());
    assert!(report.is_clean(), "{:?}", report.problems);
    assert_eq!(report.checked.allocations, 2);
    assert_eq!(report.checked.pods_with_addresses, 1);
}

#[test]
fn allocation_of_a_deleted_pod_is_leaked() {
    let mut s = clean();
    s.pods.clear();
    let report = check(&s);
    assert_eq!(kinds(&report), [ProblemKind::LeakedAllocation]);
    let p = &report.problems[0];
    assert_eq!(p.address, Some("10.0.0.2".parse().unwrap()));
    assert_eq!(p.pod.as_deref(), Some("shop/web-1"));
    assert_eq!(p.block.as_deref(), Some("10-0-0-0-26"));
    assert_eq!(p.ordinal, Some(2));
    assert_eq!(leaked_allocations(&s)[0].pool.as_deref(), Some("default"));
}

#[test]
fn tunnel_address_of_a_deleted_node_is_leaked() {
    let mut s = clean();
    s.nodes.clear();
    let report = check(&s);
    assert_eq!(kinds(&report), [ProblemKind::LeakedAllocation]);
    assert_eq!(report.problems[0].node.as_deref(), Some("sim-1"));
}

#[test]
fn a_pod_being_set_up_keeps_its_allocation() {
    let mut s = clean();
    s.pods[0].addresses.clear();
    s.pods[0].container_id = None;
    assert!(check(&s).is_clean());
    // Recreated under the same name with another address: the old allocation is leaked.
    s.pods[0].addresses = vec!["10.0.0.3".parse().unwrap()];
    let report = check(&s);
    assert!(
        report
            .problems
            .iter()
            .any(|p| p.kind == ProblemKind::LeakedAllocation
                && p.address == Some("10.0.0.2".parse().unwrap()))
    );
}

#[test]
fn pod_address_without_allocation_in_an_enabled_pool() {
    let mut s = clean();
    s.pods.push(pod("shop", "ghost", "sim-1", "10.0.0.9", "c9"));
    let report = check(&s);
    assert_eq!(kinds(&report), [ProblemKind::PodWithoutAllocation]);
    assert_eq!(report.problems[0].pod.as_deref(), Some("shop/ghost"));
}

#[test]
fn pod_address_outside_every_enabled_pool() {
    let mut s = clean();
    s.pods
        .push(pod("shop", "stray", "sim-1", "172.16.0.4", "c8"));
    s.pools.push(pool("off", "10.5.0.0/24", Some(26), true));
    s.pods
        .push(pod("shop", "parked", "sim-1", "10.5.0.4", "c7"));
    let report = check(&s);
    assert_eq!(
        kinds(&report),
        [
            ProblemKind::OutsideActivePools,
            ProblemKind::OutsideActivePools
        ]
    );
    assert!(report.problems[0].message.contains("disabled pool off"));
}

#[test]
fn handle_without_addresses() {
    let mut s = clean();
    s.handles
        .push(handle("k8s-pod-network.gone", &[("10.0.0.0/26", 1)]));
    let report = check(&s);
    assert_eq!(kinds(&report), [ProblemKind::HandleWithoutAddresses]);
    assert_eq!(
        report.problems[0].handle.as_deref(),
        Some("k8s-pod-network.gone")
    );
}

#[test]
fn block_without_pool() {
    let mut s = clean();
    s.blocks.push(block("10.7.0.0/26", None, &[]));
    let report = check(&s);
    assert_eq!(kinds(&report), [ProblemKind::BlockWithoutPool]);
    assert_eq!(report.count(ProblemKind::BlockWithoutPool), 1);
    assert_eq!(report.problems[0].block.as_deref(), Some("10-7-0-0-26"));
}

#[test]
fn block_of_another_size_than_its_pools_block_size() {
    let mut s = clean();
    s.blocks.push(block("10.0.0.128/28", None, &[]));
    let report = check(&s);
    assert_eq!(kinds(&report), [ProblemKind::BlockSizeMismatch]);
    let p = &report.problems[0];
    assert_eq!(p.pool.as_deref(), Some("default"));
    assert!(
        p.message
            .contains("is a /28 in pool default, whose blockSize is 26"),
        "{}",
        p.message
    );
}

#[test]
fn affinity_of_a_node_that_is_gone_is_stale() {
    let mut s = clean();
    s.blocks.push(block("10.0.0.64/26", Some("gone-1"), &[]));
    s.affinities
        .push(affinity("gone-1", "10.0.0.64/26", "confirmed"));
    let report = check(&s);
    assert_eq!(kinds(&report), [ProblemKind::StaleAffinity]);
    let p = &report.problems[0];
    assert_eq!(p.node.as_deref(), Some("gone-1"));
    assert_eq!(p.block.as_deref(), Some("10-0-0-64-26"));
    assert!(p.affinity.is_some());
    // The affinity of a live node is not.
    s.affinities
        .push(affinity("sim-1", "10.0.0.0/26", "confirmed"));
    assert_eq!(check(&s).count(ProblemKind::StaleAffinity), 1);
}
