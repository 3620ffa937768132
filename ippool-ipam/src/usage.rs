//! How much of each pool is in use, and by whom: blocks, allocated addresses, pods (with their
//! owners) and nodes. Pure functions of a [`Snapshot`].

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use ipnet::IpNet;
use ippool_rules::cidr;
use ippool_rules::model::{IpPool, IpamBlock};
use serde::Serialize;

use crate::index::{AllocationUse, PoolIndex, allocations_of, host_of_affinity};
use crate::snapshot::{Owner, Snapshot};

/// Usage of one pool.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PoolUsage {
    pub pool: String,
    /// The pool's CIDR as written.
    pub cidr: String,
    /// IPAM blocks inside the pool.
    pub blocks: usize,
    /// Allocated addresses in those blocks (pods, tunnel addresses, leaked ones alike).
    pub addresses_in_use: u128,
    /// Addresses the pool's CIDR spans (0 when the CIDR does not parse).
    pub addresses_total: u128,
    /// Live pods holding an address in the pool.
    pub pods: usize,
    /// Nodes with a block of this pool affine to them.
    pub nodes: usize,
}

impl PoolUsage {
    /// Percentage in use, rounded down; 0 for an empty or unparsable pool.
    pub fn percent_in_use(&self) -> u128 {
        (self.addresses_in_use * 100)
            .checked_div(self.addresses_total)
            .unwrap_or(0)
    }
}

/// Usage of every pool, in the order of `snapshot.pools`.
pub fn pool_usage(snapshot: &Snapshot) -> Vec<PoolUsage> {
    let index = PoolIndex::new(&snapshot.pools);
    #[derive(Default)]
    struct Tally<'a> {
        blocks: usize,
        in_use: u128,
        pods: usize,
        nodes: BTreeSet<&'a str>,
    }
    let mut tallies: BTreeMap<&str, Tally> = BTreeMap::new();
    for block in &snapshot.blocks {
        let Some(pool) = block.cidr().and_then(|net| index.pool_of_block(&net)) else {
            continue;
        };
        let tally = tallies.entry(pool.name()).or_default();
        tally.blocks += 1;
        tally.in_use += block.allocated_count() as u128;
        if let Some(node) = host_of_affinity(block.spec.affinity.as_deref()) {
            tally.nodes.insert(node);
        }
    }
    for pod in snapshot.pods.iter().filter(|p| p.holds_addresses()) {
        let pools: BTreeSet<&str> = pod
            .addresses
            .iter()
            .filter_map(|a| index.pool_of_addr(*a))
            .map(IpPool::name)
            .collect();
        for pool in pools {
            tallies.entry(pool).or_default().pods += 1;
        }
    }
    snapshot
        .pools
        .iter()
        .map(|pool| {
            let tally = tallies.remove(pool.name()).unwrap_or_default();
            PoolUsage {
                pool: pool.name().to_owned(),
                cidr: pool.spec.cidr.clone().unwrap_or_default(),
                blocks: tally.blocks,
                addresses_in_use: tally.in_use,
                addresses_total: pool
                    .spec
                    .cidr_net()
                    .map_or(0, |net| cidr::address_count(&net)),
                pods: tally.pods,
                nodes: tally.nodes.len(),
            }
        })
        .collect()
}

/// A live pod with addresses in a pool.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PodInPool<'a> {
    pub namespace: &'a str,
    pub name: &'a str,
    pub node: Option<&'a str>,
    pub owner: &'a Owner,
    /// The pod's addresses inside the pool.
    pub addresses: Vec<IpAddr>,
}

/// Live pods holding an address in `pool`, sorted by namespace and name; `namespace` narrows.
pub fn pods_in_pool<'a>(
    snapshot: &'a Snapshot,
    pool: &IpPool,
    namespace: Option<&str>,
) -> Vec<PodInPool<'a>> {
    let index = PoolIndex::new(&snapshot.pools);
    let mut pods: Vec<PodInPool> = snapshot
        .pods
        .iter()
        .filter(|p| p.holds_addresses())
        .filter(|p| namespace.is_none_or(|ns| p.namespace == ns))
        .filter_map(|p| {
            let addresses: Vec<IpAddr> = p
                .addresses
                .iter()
                .copied()
                .filter(|a| {
                    index
                        .pool_of_addr(*a)
                        .is_some_and(|q| q.name() == pool.name())
                })
                .collect();
            (!addresses.is_empty()).then(|| PodInPool {
                namespace: &p.namespace,
                name: &p.name,
                node: p.node.as_deref(),
                owner: &p.owner,
                addresses,
            })
        })
        .collect();
    pods.sort_by(|a, b| (a.namespace, a.name).cmp(&(b.namespace, b.name)));
    pods
}

/// Pods of one owner in one namespace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OwnerGroup<'a> {
    pub namespace: &'a str,
    pub owner: &'a Owner,
    pub pods: usize,
    pub nodes: BTreeSet<&'a str>,
}

/// `pods_in_pool` grouped by namespace and owner, for `show`.
pub fn group_by_owner<'a>(pods: &[PodInPool<'a>]) -> Vec<OwnerGroup<'a>> {
    let mut groups: BTreeMap<(&str, &Owner), OwnerGroup> = BTreeMap::new();
    for pod in pods {
        let group = groups
            .entry((pod.namespace, pod.owner))
            .or_insert_with(|| OwnerGroup {
                namespace: pod.namespace,
                owner: pod.owner,
                pods: 0,
                nodes: BTreeSet::new(),
            });
        group.pods += 1;
        if let Some(node) = pod.node {
            group.nodes.insert(node);
        }
    }
    groups.into_values().collect()
}

/// Where live pods hold addresses in a pool: counts by namespace and by node, for refusals
/// ("12 pods hold addresses: shop (10), kube-system (2); on sim-1 (7), sim-2 (5)").
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct Holders {
    pub pods: usize,
    pub by_namespace: BTreeMap<String, usize>,
    pub by_node: BTreeMap<String, usize>,
}

pub fn holders(pods: &[PodInPool<'_>]) -> Holders {
    let mut holders = Holders {
        pods: pods.len(),
        ..Holders::default()
    };
    for pod in pods {
        *holders
            .by_namespace
            .entry(pod.namespace.to_owned())
            .or_default() += 1;
        *holders
            .by_node
            .entry(pod.node.unwrap_or("<unscheduled>").to_owned())
            .or_default() += 1;
    }
    holders
}

/// One block of a pool with its use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BlockUse<'a> {
    pub name: &'a str,
    pub cidr: IpNet,
    /// `host:<node>` affinity's node, if any.
    pub node: Option<&'a str>,
    pub in_use: usize,
    pub size: u128,
    /// The pool the block falls in, if any.
    pub pool: Option<&'a str>,
    /// The pool's blockSize when the block's prefix differs from it.
    pub pool_block_size: Option<u8>,
}

impl BlockUse<'_> {
    pub fn size_mismatch(&self) -> bool {
        self.pool_block_size
            .is_some_and(|size| size != self.cidr.prefix_len())
    }
}

/// Every block with a parsable CIDR, with its pool, sorted by address.
pub fn block_uses(snapshot: &Snapshot) -> Vec<BlockUse<'_>> {
    let index = PoolIndex::new(&snapshot.pools);
    let mut uses: Vec<BlockUse> = snapshot
        .blocks
        .iter()
        .filter_map(|block| {
            let cidr = block.cidr()?;
            let pool = index.pool_of_block(&cidr);
            Some(BlockUse {
                name: block.metadata.name.as_deref().unwrap_or(""),
                cidr,
                node: host_of_affinity(block.spec.affinity.as_deref()),
                in_use: block.allocated_count(),
                size: cidr::address_count(&cidr),
                pool: pool.map(IpPool::name),
                pool_block_size: pool.and_then(|p| p.spec.defaulted().block_size),
            })
        })
        .collect();
    uses.sort_by(|a, b| {
        (a.cidr.network(), a.cidr.prefix_len()).cmp(&(b.cidr.network(), b.cidr.prefix_len()))
    });
    uses
}

/// A node's tunnel address found in a pool's blocks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TunnelAddress<'a> {
    pub node: &'a str,
    pub address: IpAddr,
    /// `ipipTunnelAddress`, `vxlanTunnelAddress`, …
    pub kind: &'a str,
}

/// Tunnel addresses allocated in the blocks of `pool`.
pub fn tunnel_addresses<'a>(snapshot: &'a Snapshot, pool: &IpPool) -> Vec<TunnelAddress<'a>> {
    let index = PoolIndex::new(&snapshot.pools);
    let mut out: Vec<TunnelAddress> = snapshot
        .blocks
        .iter()
        .filter(|b| in_pool(&index, b, pool))
        .flat_map(allocations_of)
        .filter_map(|a| match a.use_() {
            AllocationUse::Tunnel { node, kind } => Some(TunnelAddress {
                node,
                address: a.address,
                kind,
            }),
            _ => None,
        })
        .collect();
    out.sort_by(|a, b| (a.node, a.address).cmp(&(b.node, b.address)));
    out
}

fn in_pool(index: &PoolIndex<'_>, block: &IpamBlock, pool: &IpPool) -> bool {
    block
        .cidr()
        .and_then(|net| index.pool_of_block(&net))
        .is_some_and(|p| p.name() == pool.name())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::*;
    use crate::snapshot::OwnerKind;

    fn snapshot() -> Snapshot {
        let mut web = pod("shop", "web-1", "sim-1", "10.0.0.2", "c1");
        web.owner = Owner {
            kind: OwnerKind::Deployment,
            name: "web".to_owned(),
        };
        let mut web2 = pod("shop", "web-2", "sim-2", "10.0.0.66", "c2");
        web2.owner = web.owner.clone();
        Snapshot {
            pools: vec![
                pool("old", "10.0.0.0/24", Some(26), true),
                pool("new", "10.1.0.0/24", Some(26), false),
            ],
            blocks: vec![
                block(
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
                ),
                block(
                    "10.0.0.64/26",
                    Some("sim-2"),
                    &[(2, "k8s-pod-network.c2", &workload("shop", "web-2", "sim-2"))],
                ),
                block("10.9.0.0/26", None, &[]),
            ],
            pods: vec![web, web2, pod("db", "bare", "sim-1", "10.1.0.5", "c3")],
            ..Snapshot::default()
        }
    }

    #[test]
    fn usage_counts_blocks_addresses_pods_and_nodes() {
        let s = snapshot();
        let usage = pool_usage(&s);
        assert_eq!(
            usage[0],
            PoolUsage {
                pool: "old".to_owned(),
                cidr: "10.0.0.0/24".to_owned(),
                blocks: 2,
                addresses_in_use: 3,
                addresses_total: 256,
                pods: 2,
                nodes: 2,
            }
        );
        assert_eq!(usage[0].percent_in_use(), 1);
        // The bare pod's address has no block in the sim state above, but it is in `new`.
        assert_eq!((usage[1].blocks, usage[1].pods), (0, 1));
    }

    #[test]
    fn pods_are_listed_and_grouped_by_owner() {
        let s = snapshot();
        let pods = pods_in_pool(&s, s.pool("old").unwrap(), None);
        assert_eq!(
            pods.iter().map(|p| p.name).collect::<Vec<_>>(),
            ["web-1", "web-2"]
        );
        let groups = group_by_owner(&pods);
        assert_eq!(groups.len(), 1);
        assert_eq!(groups[0].pods, 2);
        assert_eq!(groups[0].nodes.len(), 2);
        let h = holders(&pods);
        assert_eq!(h.by_node.get("sim-1"), Some(&1));
        assert_eq!(h.by_namespace.get("shop"), Some(&2));
        assert!(pods_in_pool(&s, s.pool("old").unwrap(), Some("db")).is_empty());
        assert_eq!(
            pods_in_pool(&s, s.pool("new").unwrap(), None)[0].name,
            "bare"
        );
    }

    #[test]
    fn blocks_know_their_pool_and_tunnels_their_node() {
        let mut s = snapshot();
        s.blocks.push(block("10.1.0.0/25", Some("sim-3"), &[]));
        let uses = block_uses(&s);
        let orphan = uses.iter().find(|b| b.name == "10-9-0-0-26").unwrap();
        assert_eq!(orphan.pool, None);
        let wide = uses.iter().find(|b| b.name == "10-1-0-0-25").unwrap();
        assert!(wide.size_mismatch());
        assert!(!uses[0].size_mismatch());
        let tunnels = tunnel_addresses(&s, s.pool("old").unwrap());
        assert_eq!(tunnels.len(), 1);
        assert_eq!(tunnels[0].node, "sim-1");
    }
}
