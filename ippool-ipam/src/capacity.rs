//! How much room each pool has left, and for how much growth: addresses in use and free, blocks
//! claimed and still claimable (each new node claims at least one), blocks per node against
//! IPAMConfig's `maxBlocksPerHost`, addresses stranded in blocks affine to a node, leaked
//! addresses; and, for a given growth, what runs out first and the command that fixes it.

use std::collections::BTreeMap;

use ippool_rules::cidr::{self, Family};
use ippool_rules::model::IpamBlock;
use serde::Serialize;

use crate::advice::{Shape, advise};
use crate::check::LeakedAllocation;
use crate::index::{PoolIndex, host_of_affinity};
use crate::snapshot::Snapshot;

/// The growth to project: more nodes, and (on every node) up to this many pods.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Growth {
    pub new_nodes: u64,
    pub pods_per_node: u64,
}

/// One node's share of a pool.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeShare {
    pub node: String,
    pub blocks: u64,
    pub addresses_in_use: u64,
    /// Addresses free in its blocks: only it allocates from them (others borrow only when they
    /// have nothing else and strictAffinity is off).
    pub addresses_free: u64,
    /// It holds `maxBlocksPerHost` blocks: it can claim no more.
    pub at_block_limit: bool,
}

/// What a growth needs of a pool, and what runs out first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Projection {
    pub new_nodes: u64,
    pub pods_per_node: u64,
    /// Blocks a full node needs (its pods and a tunnel address).
    pub blocks_per_full_node: u64,
    /// Blocks the growth claims: the new nodes', and existing nodes' up to full.
    pub blocks_needed: u128,
    /// None when the pool has room; else what runs out.
    pub runs_out: Option<String>,
    /// The command that makes room, when something runs out.
    pub fix: Option<String>,
}

/// Room in one pool.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PoolCapacity {
    pub pool: String,
    pub cidr: String,
    pub block_size: Option<u8>,
    pub enabled: bool,
    pub addresses_total: u128,
    pub addresses_in_use: u128,
    pub addresses_free: u128,
    pub blocks_total: u128,
    pub blocks_claimed: u128,
    pub blocks_claimable: u128,
    /// Free addresses in blocks affine to a node.
    pub addresses_stranded: u128,
    pub addresses_leaked: u64,
    pub nodes: Vec<NodeShare>,
    pub projection: Option<Projection>,
}

/// The room of every pool, with `max_blocks_per_host` (0: no limit), the `leaked` allocations to
/// count per pool (as [`crate::check::leaked_allocations`] finds them; none when pods were not
/// read), and an optional growth to project.
pub fn capacity(
    snapshot: &Snapshot,
    leaked: &[LeakedAllocation],
    max_blocks_per_host: u64,
    growth: Option<Growth>,
) -> Vec<PoolCapacity> {
    // Each block to its pool, in one pass.
    let index = PoolIndex::new(&snapshot.pools);
    let mut blocks_of: BTreeMap<&str, Vec<&IpamBlock>> = BTreeMap::new();
    for block in &snapshot.blocks {
        if let Some(pool) = block.cidr().and_then(|net| index.pool_of_block(&net)) {
            blocks_of.entry(pool.name()).or_default().push(block);
        }
    }
    let mut out = Vec::new();
    for pool in &snapshot.pools {
        let spec = pool.spec.defaulted();
        let Some(net) = spec.cidr.map(|n| cidr::canonical(&n)) else {
            continue;
        };
        let block_size = spec.block_size;
        let host_bits = u32::from(net.max_prefix_len() - net.prefix_len());
        let addresses_total = 1u128.checked_shl(host_bits).unwrap_or(u128::MAX);
        let blocks_total = block_size
            .filter(|b| *b >= net.prefix_len())
            .map_or(0, |b| 1u128 << u32::from(b - net.prefix_len()));
        let mut nodes: BTreeMap<String, NodeShare> = BTreeMap::new();
        let (mut in_use, mut claimed, mut stranded) = (0u128, 0u128, 0u128);
        for block in blocks_of.remove(pool.name()).unwrap_or_default() {
            let used = block.allocated_count() as u64;
            let free = block.spec.unallocated.len() as u64;
            in_use += u128::from(used);
            claimed += 1;
            if let Some(node) = host_of_affinity(block.spec.affinity.as_deref()) {
                stranded += u128::from(free);
                let share = nodes.entry(node.to_owned()).or_insert_with(|| NodeShare {
                    node: node.to_owned(),
                    blocks: 0,
                    addresses_in_use: 0,
                    addresses_free: 0,
                    at_block_limit: false,
                });
                share.blocks += 1;
                share.addresses_in_use += used;
                share.addresses_free += free;
            }
        }
        let mut nodes: Vec<NodeShare> = nodes.into_values().collect();
        for share in &mut nodes {
            share.at_block_limit = max_blocks_per_host > 0 && share.blocks >= max_blocks_per_host;
        }
        let blocks_claimable = blocks_total.saturating_sub(claimed);
        let place = Place {
            pool: pool.name(),
            family: Family::of(&net),
            nodes: &nodes,
            cluster_nodes: snapshot.nodes.len() as u64,
            claimable: blocks_claimable,
            max_blocks_per_host,
        };
        let projection = growth.and_then(|g| project(&place, block_size?, g));
        out.push(PoolCapacity {
            pool: pool.name().to_owned(),
            cidr: net.to_string(),
            block_size,
            enabled: pool.is_enabled(),
            addresses_total,
            addresses_in_use: in_use,
            addresses_free: addresses_total.saturating_sub(in_use),
            blocks_total,
            blocks_claimed: claimed,
            blocks_claimable,
            addresses_stranded: stranded,
            addresses_leaked: leaked
                .iter()
                .filter(|l| l.pool.as_deref() == Some(pool.name()))
                .count() as u64,
            nodes,
            projection,
        });
    }
    out
}

/// A pool as a projection sees it.
struct Place<'a> {
    pool: &'a str,
    family: Family,
    /// The nodes holding blocks of the pool.
    nodes: &'a [NodeShare],
    /// Every node of the cluster.
    cluster_nodes: u64,
    claimable: u128,
    max_blocks_per_host: u64,
}

/// What `growth` needs of a pool with its nodes as they are, and the fix when it does not fit.
fn project(place: &Place<'_>, block_size: u8, growth: Growth) -> Option<Projection> {
    let Place {
        pool,
        family,
        nodes,
        cluster_nodes,
        claimable,
        max_blocks_per_host,
    } = *place;
    let block_addresses = 1u64.checked_shl(u32::from(family.bits() - block_size))?;
    let per_node = growth.pods_per_node + 1;
    let blocks_per_full_node = per_node.div_ceil(block_addresses).max(1);
    let growing: u128 = nodes
        .iter()
        .map(|n| u128::from(blocks_per_full_node.saturating_sub(n.blocks)))
        .sum();
    let blocks_needed = growing + u128::from(growth.new_nodes) * u128::from(blocks_per_full_node);
    let all_nodes = cluster_nodes + growth.new_nodes;
    let advice = advise(&Shape {
        family,
        nodes: all_nodes.max(1),
        pods_per_node: growth.pods_per_node,
        node_addresses: 1,
        windows: false,
        max_blocks_per_host,
    });
    let advised = advice
        .recommended
        .and_then(|b| advice.candidates.iter().find(|c| c.block_size == b));
    let (runs_out, fix) = if max_blocks_per_host > 0 && blocks_per_full_node > max_blocks_per_host {
        (
            Some(format!(
                "a full node needs {blocks_per_full_node} blocks of /{block_size}, more than \
                 maxBlocksPerHost {max_blocks_per_host}"
            )),
            advised.map(|c| format!("kubectl ippool resize {pool} --block-size {}", c.block_size)),
        )
    } else if blocks_needed > claimable {
        (
            Some(format!(
                "the growth claims {blocks_needed} more blocks of /{block_size}; {claimable} are \
                 left"
            )),
            advised.and_then(|c| c.pool_prefix).map(|prefix| {
                format!(
                    "kubectl ippool migrate --from {pool} --to {pool}-larger --cidr <a free /{prefix} \
                     inside the cluster CIDR>"
                )
            }),
        )
    } else {
        (None, None)
    };
    Some(Projection {
        new_nodes: growth.new_nodes,
        pods_per_node: growth.pods_per_node,
        blocks_per_full_node,
        blocks_needed,
        runs_out,
        fix,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::leaked_allocations;
    use crate::fixtures::*;

    fn of(snapshot: &Snapshot, max_blocks_per_host: u64, growth: Option<Growth>) -> PoolCapacity {
        let [c] = capacity(
            snapshot,
            &leaked_allocations(snapshot),
            max_blocks_per_host,
            growth,
        )
        .try_into()
        .unwrap();
        c
    }

    /// A /24 pool of /26 blocks (4 blocks): two claimed by sim-1 (3 and 1 addresses in use), one
    /// by sim-2 (one leaked address, its pod gone).
    fn snapshot() -> Snapshot {
        Snapshot {
            pools: vec![pool("small", "10.0.0.0/24", Some(26), false)],
            blocks: vec![
                block(
                    "10.0.0.0/26",
                    Some("sim-1"),
                    &[
                        (0, "k8s-pod-network.a", &workload("shop", "a", "sim-1")),
                        (1, "k8s-pod-network.b", &workload("shop", "b", "sim-1")),
                        (2, "k8s-pod-network.c", &workload("shop", "c", "sim-1")),
                    ],
                ),
                block(
                    "10.0.0.64/26",
                    Some("sim-1"),
                    &[(0, "k8s-pod-network.d", &workload("shop", "d", "sim-1"))],
                ),
                block(
                    "10.0.0.128/26",
                    Some("sim-2"),
                    &[(
                        0,
                        "k8s-pod-network.gone",
                        &workload("shop", "gone", "sim-2"),
                    )],
                ),
            ],
            pods: vec![
                pod("shop", "a", "sim-1", "10.0.0.0", "a"),
                pod("shop", "b", "sim-1", "10.0.0.1", "b"),
                pod("shop", "c", "sim-1", "10.0.0.2", "c"),
                pod("shop", "d", "sim-1", "10.0.0.64", "d"),
            ],
            nodes: vec![node("sim-1"), node("sim-2")],
            ..Snapshot::default()
        }
    }

    #[test]
    fn room_is_counted_in_addresses_blocks_and_per_node() {
        let c = of(&snapshot(), 2, None);
        assert_eq!(
            (c.addresses_total, c.addresses_in_use, c.addresses_free),
            (256, 5, 251)
        );
        assert_eq!(
            (c.blocks_total, c.blocks_claimed, c.blocks_claimable),
            (4, 3, 1)
        );
        assert_eq!(c.addresses_stranded, 192 - 5);
        assert_eq!(c.addresses_leaked, 1);
        let sim1 = &c.nodes[0];
        assert_eq!(
            (sim1.node.as_str(), sim1.blocks, sim1.addresses_in_use),
            ("sim-1", 2, 4)
        );
        assert!(sim1.at_block_limit, "two blocks with maxBlocksPerHost 2");
        assert!(!c.nodes[1].at_block_limit);
    }

    #[test]
    fn growth_that_fits_and_growth_that_does_not() {
        let fits = Growth {
            new_nodes: 0,
            pods_per_node: 60,
        };
        let c = of(&snapshot(), 0, Some(fits));
        let p = c.projection.unwrap();
        // sim-2 needs nothing more, sim-1 neither: 61 addresses fit one /26 block each.
        assert_eq!((p.blocks_per_full_node, p.blocks_needed), (1, 0));
        assert_eq!(p.runs_out, None);

        let more = Growth {
            new_nodes: 2,
            pods_per_node: 110,
        };
        let c = of(&snapshot(), 0, Some(more));
        let p = c.projection.unwrap();
        // 111 addresses: 2 blocks a node; sim-2 needs one more, two new nodes four.
        assert_eq!((p.blocks_per_full_node, p.blocks_needed), (2, 5));
        assert!(
            p.runs_out
                .as_deref()
                .unwrap()
                .contains("5 more blocks of /26; 1 are left")
        );
        assert!(
            p.fix
                .as_deref()
                .unwrap()
                .starts_with("kubectl ippool migrate --from small")
        );

        let c = of(&snapshot(), 1, Some(more));
        let p = c.projection.unwrap();
        assert!(
            p.runs_out
                .as_deref()
                .unwrap()
                .contains("more than maxBlocksPerHost 1")
        );
        assert_eq!(
            p.fix.as_deref(),
            Some("kubectl ippool resize small --block-size 25")
        );
    }
}
