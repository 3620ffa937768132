//! What stands between a pool and its deletion: [`assess`] finds whether the pool is still
//! enabled, live pods or node tunnels hold addresses in it, or allocations leaked by gone pods
//! remain, and lists the blocks and affinities whose release comes before the pool goes (the
//! cluster crate's `pool_delete` does that, in Calico's order).

use std::net::IpAddr;

use ipnet::IpNet;
use ippool_rules::cidr;
use ippool_rules::model::IpPool;
use serde::Serialize;

use crate::check::{LeakedAllocation, leaked_allocations};
use crate::index::PoolIndex;
use crate::ipam_ref::{AffinityRef, BlockRef};
use crate::snapshot::Snapshot;
use crate::usage::{Holders, TunnelAddress, holders, pods_in_pool, tunnel_addresses};

/// A block of the pool with the affinities that point at its CIDR. `block` is `None` for
/// affinities whose block no longer exists.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PoolBlock {
    pub cidr: String,
    pub block: Option<BlockRef>,
    pub affinities: Vec<AffinityRef>,
}

/// Everything deleting one pool depends on, from a snapshot.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeleteAssessment {
    pub pool: String,
    pub resource_version: Option<String>,
    pub enabled: bool,
    pub holders: Holders,
    pub tunnels: Vec<(String, IpAddr, String)>,
    pub leaked: Vec<LeakedAllocation>,
    pub blocks: Vec<PoolBlock>,
}

/// Why a delete cannot go ahead now.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeleteRefusal {
    #[error(
        "IP pool {pool} is enabled; new pods may still get addresses from it. Disable it first \
         (`kubectl ippool disable {pool}`), move its pods, then delete it"
    )]
    Enabled { pool: String },
    #[error(
        "{count} live pod(s) hold addresses in IP pool {pool} — by namespace: {namespaces}; by node: \
         {nodes}. Deleting the pool would strand them (no NAT/encapsulation, addresses handed out \
         again). Move them first (`kubectl ippool pods {pool} -A` lists them)"
    )]
    PodsHoldAddresses {
        pool: String,
        count: usize,
        namespaces: String,
        nodes: String,
    },
    #[error(
        "{count} node tunnel address(es) are still in IP pool {pool} ({nodes}); calico-node moves them \
         when an enabled pool with the same ipipMode/vxlanMode exists — create or enable one and \
         wait for the move"
    )]
    TunnelAddresses {
        pool: String,
        count: usize,
        nodes: String,
    },
    #[error(
        "{count} allocation(s) in IP pool {pool} belong to no live pod (leaked): {addresses}. \
         Re-run with --release-leaked to release them before the pool is deleted"
    )]
    Leaked {
        pool: String,
        count: usize,
        addresses: String,
    },
}

fn summarize(counts: &std::collections::BTreeMap<String, usize>) -> String {
    counts
        .iter()
        .map(|(k, v)| format!("{k} ({v})"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Up to `limit` items joined by commas, with how many more there are.
pub fn list_some<T: ToString>(items: impl Iterator<Item = T>, limit: usize) -> String {
    let all: Vec<String> = items.map(|i| i.to_string()).collect();
    if all.len() > limit {
        format!("{} and {} more", all[..limit].join(", "), all.len() - limit)
    } else {
        all.join(", ")
    }
}

impl DeleteAssessment {
    /// The reasons to refuse, most fundamental first; empty when the delete may go ahead.
    pub fn refusals(&self, release_leaked: bool) -> Vec<DeleteRefusal> {
        let pool = self.pool.clone();
        let mut out = Vec::new();
        if self.enabled {
            out.push(DeleteRefusal::Enabled { pool: pool.clone() });
        }
        if self.holders.pods > 0 {
            out.push(DeleteRefusal::PodsHoldAddresses {
                pool: pool.clone(),
                count: self.holders.pods,
                namespaces: summarize(&self.holders.by_namespace),
                nodes: summarize(&self.holders.by_node),
            });
        }
        if !self.tunnels.is_empty() {
            out.push(DeleteRefusal::TunnelAddresses {
                pool: pool.clone(),
                count: self.tunnels.len(),
                nodes: list_some(
                    self.tunnels
                        .iter()
                        .map(|(node, address, kind)| format!("{node} {address} {kind}")),
                    5,
                ),
            });
        }
        if !self.leaked.is_empty() && !release_leaked {
            out.push(DeleteRefusal::Leaked {
                pool,
                count: self.leaked.len(),
                addresses: list_some(
                    self.leaked.iter().map(|l| match &l.pod {
                        Some(pod) => format!("{} (was {pod})", l.address),
                        None => l.address.to_string(),
                    }),
                    10,
                ),
            });
        }
        out
    }
}

/// What stands between pool `name` and its deletion; `None` when there is no such pool.
pub fn assess(snapshot: &Snapshot, name: &str) -> Option<DeleteAssessment> {
    let pool = snapshot.pool(name)?;
    let pods = pods_in_pool(snapshot, pool, None);
    let tunnels = tunnel_addresses(snapshot, pool)
        .into_iter()
        .map(
            |TunnelAddress {
                 node,
                 address,
                 kind,
             }| (node.to_owned(), address, kind.to_owned()),
        )
        .collect();
    let leaked = leaked_allocations(snapshot)
        .into_iter()
        .filter(|l| l.pool.as_deref() == Some(name))
        .collect();
    Some(DeleteAssessment {
        pool: name.to_owned(),
        resource_version: pool.metadata.resource_version.clone(),
        enabled: pool.is_enabled(),
        holders: holders(&pods),
        tunnels,
        leaked,
        blocks: pool_blocks(snapshot, pool),
    })
}

/// The pool's blocks and the affinities inside its CIDR, grouped by block CIDR.
fn pool_blocks(snapshot: &Snapshot, pool: &IpPool) -> Vec<PoolBlock> {
    let index = PoolIndex::new(&snapshot.pools);
    let belongs = |net: &IpNet| {
        index
            .pool_of_block(net)
            .is_some_and(|p| p.name() == pool.name())
    };
    let mut out: Vec<(IpNet, PoolBlock)> = Vec::new();
    for block in &snapshot.blocks {
        let Some(net) = block.cidr() else { continue };
        if !belongs(&net) {
            continue;
        }
        out.push((
            net,
            PoolBlock {
                cidr: net.to_string(),
                block: Some(BlockRef {
                    name: block.metadata.name.clone().unwrap_or_default(),
                    cidr: block.spec.cidr.clone(),
                    resource_version: block.metadata.resource_version.clone(),
                }),
                affinities: Vec::new(),
            },
        ));
    }
    for affinity in &snapshot.affinities {
        let Ok(net) = cidr::parse_lenient(&affinity.spec.cidr).map(|n| cidr::canonical(&n)) else {
            continue;
        };
        if !belongs(&net) {
            continue;
        }
        let reference = AffinityRef {
            name: affinity.metadata.name.clone().unwrap_or_default(),
            node: affinity.spec.node.clone(),
            cidr: affinity.spec.cidr.clone(),
            state: affinity.spec.state.clone(),
            resource_version: affinity.metadata.resource_version.clone(),
        };
        match out.iter_mut().find(|(n, _)| *n == net) {
            Some((_, entry)) => entry.affinities.push(reference),
            None => out.push((
                net,
                PoolBlock {
                    cidr: net.to_string(),
                    block: None,
                    affinities: vec![reference],
                },
            )),
        }
    }
    out.sort_by_key(|(net, _)| (net.network(), net.prefix_len()));
    out.into_iter().map(|(_, b)| b).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::*;

    fn snapshot() -> Snapshot {
        Snapshot {
            pools: vec![
                pool("old", "10.0.0.0/24", Some(26), true),
                pool("new", "10.1.0.0/24", Some(26), false),
            ],
            blocks: vec![
                block(
                    "10.0.0.0/26",
                    Some("sim-1"),
                    &[(
                        1,
                        "k8s-pod-network.gone",
                        &workload("shop", "web-0", "sim-1"),
                    )],
                ),
                block("10.0.0.64/26", Some("sim-2"), &[]),
                block("10.1.0.0/26", Some("sim-1"), &[]),
            ],
            affinities: vec![
                affinity("sim-1", "10.0.0.0/26", "confirmed"),
                affinity("sim-2", "10.0.0.64/26", "confirmed"),
                affinity("sim-3", "10.0.0.128/26", "pendingDeletion"),
                affinity("sim-1", "10.1.0.0/26", "confirmed"),
            ],
            nodes: vec![node("sim-1"), node("sim-2")],
            ..Snapshot::default()
        }
    }

    #[test]
    fn a_disabled_pool_without_pods_may_go_once_leaks_are_released() {
        let a = assess(&snapshot(), "old").unwrap();
        assert!(!a.enabled);
        assert_eq!(a.leaked.len(), 1);
        let refusals = a.refusals(false);
        assert_eq!(refusals.len(), 1);
        let text = refusals[0].to_string();
        assert!(text.contains("--release-leaked"), "{text}");
        assert!(text.contains("10.0.0.1 (was shop/web-0)"), "{text}");
        assert!(a.refusals(true).is_empty());
        // Its blocks, and the stale affinity whose block is gone, are all released.
        let cidrs: Vec<&str> = a.blocks.iter().map(|b| b.cidr.as_str()).collect();
        assert_eq!(cidrs, ["10.0.0.0/26", "10.0.0.64/26", "10.0.0.128/26"]);
        assert!(a.blocks[2].block.is_none());
    }

    #[test]
    fn enabled_pools_and_pods_are_refused_with_counts_and_places() {
        let mut s = snapshot();
        s.pods.push(pod("shop", "web-1", "sim-1", "10.1.0.4", "c1"));
        s.pods.push(pod("db", "pg-0", "sim-2", "10.1.0.5", "c2"));
        let a = assess(&s, "new").unwrap();
        let refusals = a.refusals(true);
        assert!(matches!(refusals[0], DeleteRefusal::Enabled { .. }));
        let text = refusals[1].to_string();
        assert!(
            text.starts_with("2 live pod(s) hold addresses in IP pool new"),
            "{text}"
        );
        assert!(text.contains("db (1), shop (1)"), "{text}");
        assert!(text.contains("sim-1 (1), sim-2 (1)"), "{text}");
        assert!(assess(&s, "missing").is_none());
    }

    #[test]
    fn tunnel_addresses_block_the_delete() {
        let mut s = snapshot();
        s.blocks[1] = block(
            "10.0.0.64/26",
            Some("sim-2"),
            &[(
                0,
                "ipip-tunnel-addr-sim-2",
                &[("node", "sim-2"), ("type", "ipipTunnelAddress")],
            )],
        );
        let a = assess(&s, "old").unwrap();
        assert!(
            a.refusals(true)
                .iter()
                .any(|r| matches!(r, DeleteRefusal::TunnelAddresses { count: 1, .. }))
        );
    }
}
