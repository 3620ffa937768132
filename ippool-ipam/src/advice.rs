//! A block size and pool size for a cluster of a given shape, with the trade-off of each candidate:
//! larger blocks mean fewer routes (every block is a route on every node, BGP or not) but more
//! addresses stranded in blocks that a node has claimed and does not fill; smaller blocks the
//! reverse. Calico claims whole blocks per node (`blockSize` addresses each, affine to the node),
//! Windows nodes keep four addresses of every block for themselves, and IPAMConfig's
//! `maxBlocksPerHost` caps the blocks a node may claim.

use ippool_rules::cidr::Family;
use serde::Serialize;

/// The cluster to size for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    pub family: Family,
    pub nodes: u64,
    /// The most pods a node runs at once (the kubelet's `maxPods`, 110 by default).
    pub pods_per_node: u64,
    /// Addresses each node takes besides its pods: one for an IPIP, VXLAN or WireGuard tunnel.
    pub node_addresses: u64,
    /// Windows nodes: four addresses of every block are reserved.
    pub windows: bool,
    /// IPAMConfig's `maxBlocksPerHost`; 0 means no limit (Calico's default).
    pub max_blocks_per_host: u64,
}

/// One block size and what it costs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Candidate {
    pub block_size: u8,
    /// Addresses a block gives pods and tunnels.
    pub usable_per_block: u64,
    pub blocks_per_node: u64,
    /// Routes in each node's table (one per block in the cluster).
    pub routes: u64,
    /// Addresses claimed by a full node that no pod or tunnel uses.
    pub stranded_per_node: u64,
    /// The smallest pool that holds every node's blocks (its prefix length).
    pub pool_prefix: Option<u8>,
    /// Why this size cannot work, when it cannot.
    pub unusable: Option<String>,
}

/// Every block size Calico accepts for the family, and the one recommended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Advice {
    pub candidates: Vec<Candidate>,
    pub recommended: Option<u8>,
    pub reason: String,
}

/// The block sizes Calico accepts: 20–32 for IPv4, 116–128 for IPv6. The smallest blocks are left
/// out (a node would need more blocks than pods); Windows needs more than four addresses a block.
fn block_sizes(family: Family, windows: bool) -> std::ops::RangeInclusive<u8> {
    match (family, windows) {
        (Family::V4, false) => 20..=30,
        (Family::V4, true) => 20..=29,
        (Family::V6, false) => 116..=126,
        (Family::V6, true) => 116..=125,
    }
}

/// Sizes `shape`'s cluster: recommends the smallest block that holds a full node (one route per
/// node, under half of it stranded), within `maxBlocksPerHost`; without such a block, the largest
/// usable one.
pub fn advise(shape: &Shape) -> Advice {
    let per_node = shape.pods_per_node + shape.node_addresses;
    let candidates: Vec<Candidate> = block_sizes(shape.family, shape.windows)
        .map(|block_size| candidate(shape, per_node, block_size))
        .collect();
    let usable = || candidates.iter().filter(|c| c.unusable.is_none());
    let one_block = usable()
        .filter(|c| c.blocks_per_node == 1)
        .max_by_key(|c| c.block_size);
    let (recommended, reason) = match one_block {
        Some(c) => (
            Some(c.block_size),
            format!(
                "the smallest block that holds a full node ({per_node} addresses: {} pods and {} \
                 for the node): one route per node, {} addresses stranded on a full node",
                shape.pods_per_node, shape.node_addresses, c.stranded_per_node
            ),
        ),
        None => match usable().min_by_key(|c| c.block_size) {
            Some(c) => (
                Some(c.block_size),
                format!(
                    "no block holds a full node ({per_node} addresses): the largest block keeps \
                     routes fewest ({} per node)",
                    c.blocks_per_node
                ),
            ),
            None => (
                None,
                format!(
                    "no block size works: a full node needs {per_node} addresses, more than \
                     maxBlocksPerHost {} blocks give (raise it, or run fewer pods per node)",
                    shape.max_blocks_per_host
                ),
            ),
        },
    };
    Advice {
        candidates,
        recommended,
        reason,
    }
}

fn candidate(shape: &Shape, per_node: u64, block_size: u8) -> Candidate {
    let bits = u32::from(shape.family.bits() - block_size);
    let addresses = 1u64 << bits;
    let usable_per_block = if shape.windows {
        addresses - 4
    } else {
        addresses
    };
    let blocks_per_node = per_node.div_ceil(usable_per_block).max(1);
    let claimed = blocks_per_node.saturating_mul(addresses);
    let needed = claimed.saturating_mul(shape.nodes.max(1));
    // The smallest power of two that holds every node's blocks, never smaller than a block.
    let pool_bits = u64::BITS - needed.saturating_sub(1).leading_zeros();
    let pool_prefix = u8::try_from(pool_bits)
        .ok()
        .and_then(|b| shape.family.bits().checked_sub(b))
        .map(|p| p.min(block_size));
    let unusable = if shape.max_blocks_per_host > 0 && blocks_per_node > shape.max_blocks_per_host {
        Some(format!(
            "a full node needs {blocks_per_node} blocks, more than maxBlocksPerHost {}",
            shape.max_blocks_per_host
        ))
    } else if pool_prefix.is_none() {
        Some("no pool of the family is large enough".to_owned())
    } else {
        None
    };
    Candidate {
        block_size,
        usable_per_block,
        blocks_per_node,
        routes: blocks_per_node.saturating_mul(shape.nodes),
        stranded_per_node: (blocks_per_node * usable_per_block).saturating_sub(per_node),
        pool_prefix,
        unusable,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(nodes: u64, pods_per_node: u64) -> Shape {
        Shape {
            family: Family::V4,
            nodes,
            pods_per_node,
            node_addresses: 1,
            windows: false,
            max_blocks_per_host: 0,
        }
    }

    fn of(advice: &Advice, block_size: u8) -> &Candidate {
        advice
            .candidates
            .iter()
            .find(|c| c.block_size == block_size)
            .unwrap()
    }

    #[test]
    fn the_kubelets_default_110_pods_fit_a_slash_25() {
        let advice = advise(&shape(100, 110));
        assert_eq!(advice.recommended, Some(25));
        let c = of(&advice, 25);
        assert_eq!(
            (c.blocks_per_node, c.routes, c.stranded_per_node),
            (1, 100, 17)
        );
        // 100 nodes of 128 addresses: 12,800 → a /18 (16,384).
        assert_eq!(c.pool_prefix, Some(18));
        // Calico's default /26 takes two blocks a node: twice the routes, the same stranding.
        let default = of(&advice, 26);
        assert_eq!((default.blocks_per_node, default.routes), (2, 200));
        assert_eq!(default.stranded_per_node, 17);
    }

    #[test]
    fn max_blocks_per_host_rules_out_small_blocks() {
        let mut s = shape(10, 250);
        s.max_blocks_per_host = 4;
        let advice = advise(&s);
        assert_eq!(advice.recommended, Some(24));
        assert!(
            of(&advice, 27)
                .unusable
                .as_deref()
                .unwrap()
                .contains("8 blocks")
        );
        assert!(
            of(&advice, 26).unusable.is_none(),
            "4 blocks of 64 hold 251"
        );
    }

    #[test]
    fn windows_nodes_lose_four_addresses_a_block() {
        let mut s = shape(3, 60);
        s.windows = true;
        let advice = advise(&s);
        // 61 addresses: a /26 leaves only 60 usable, so /25.
        assert_eq!(advice.recommended, Some(25));
        assert_eq!(of(&advice, 26).usable_per_block, 60);
        assert!(advice.candidates.iter().all(|c| c.block_size <= 29));
    }

    #[test]
    fn ipv6_blocks_are_sized_the_same_way() {
        let mut s = shape(1000, 110);
        s.family = Family::V6;
        let advice = advise(&s);
        assert_eq!(advice.recommended, Some(121));
        assert_eq!(of(&advice, 121).pool_prefix, Some(111));
    }

    #[test]
    fn a_node_larger_than_any_block_gets_the_largest() {
        let advice = advise(&shape(5, 5000));
        assert_eq!(advice.recommended, Some(20));
        assert_eq!(of(&advice, 20).blocks_per_node, 2);
        let mut capped = shape(5, 5000);
        capped.max_blocks_per_host = 1;
        let none = advise(&capped);
        assert_eq!(none.recommended, None);
        assert!(
            none.reason.contains("no block size works"),
            "{}",
            none.reason
        );
    }
}
