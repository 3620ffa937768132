//! What `resize --block-size auto` and `migrate --cidr auto` pick, from the cluster as it is:
//! the block size [`crate::advice`] recommends for its nodes, and a free range inside the cluster
//! CIDR big enough for every node's blocks twice over (and never smaller than the pool it
//! replaces).

use ipnet::IpNet;
use ippool_rules::cidr::Family;

use crate::advice::{Shape, advise};
use crate::free_range::free_range;
use crate::snapshot::NodeRecord;

/// The kubelet's default maxPods, for nodes that do not report theirs.
const DEFAULT_MAX_PODS: u64 = 110;

/// The cluster's shape for `family`: its node count, the largest maxPods any node reports, whether
/// any node runs Windows, one tunnel address per node, and IPAMConfig's limit.
pub fn shape_of(nodes: &[NodeRecord], family: Family, max_blocks_per_host: u64) -> Shape {
    Shape {
        family,
        nodes: (nodes.len() as u64).max(1),
        pods_per_node: nodes
            .iter()
            .filter_map(|n| n.max_pods)
            .max()
            .unwrap_or(DEFAULT_MAX_PODS),
        node_addresses: 1,
        windows: nodes
            .iter()
            .any(|n| n.labels.get("kubernetes.io/os").map(String::as_str) == Some("windows")),
        max_blocks_per_host,
    }
}

/// A choice made for `auto`, and why, for the plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Choice<T> {
    pub value: T,
    pub why: String,
}

/// `--block-size auto`: the recommended block size, or why none works.
pub fn block_size(shape: &Shape) -> Result<Choice<u8>, String> {
    let advice = advise(shape);
    match advice.recommended {
        Some(size) => Ok(Choice {
            value: size,
            why: format!(
                "advised for {} node(s) of up to {} pods: {}",
                shape.nodes, shape.pods_per_node, advice.reason
            ),
        }),
        None => Err(advice.reason),
    }
}

/// `--cidr auto` for a pool replacing `old` with blocks of `block_size`: a free range inside
/// `cluster` (of `old`'s family) clear of `taken`, holding every node's blocks twice over and at
/// least as large as `old`.
pub fn cidr(
    shape: &Shape,
    block_size: u8,
    old: &IpNet,
    cluster: &[IpNet],
    taken: &[IpNet],
) -> Result<Choice<IpNet>, String> {
    let family = Family::of(old);
    let needed = advise(shape)
        .candidates
        .iter()
        .find(|c| c.block_size == block_size)
        .and_then(|c| c.pool_prefix)
        .ok_or_else(|| format!("blockSize {block_size} cannot hold {} node(s)", shape.nodes))?;
    let prefix = needed
        .saturating_sub(1)
        .min(old.prefix_len())
        .min(block_size);
    let inside: Vec<IpNet> = cluster
        .iter()
        .copied()
        .filter(|c| Family::of(c) == family)
        .collect();
    if inside.is_empty() {
        return Err(format!(
            "the cluster CIDR has no {family} range to put the pool in: give --cidr, or --cluster-cidr"
        ));
    }
    let shown = inside
        .iter()
        .map(IpNet::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    free_range(&inside, taken, prefix)
        .map(|value| Choice {
            value,
            why: format!(
                "the first free /{prefix} in the cluster CIDR {shown}: {} node(s) need a /{needed} of /{block_size} blocks, doubled for growth, and never smaller than {old}",
                shape.nodes
            ),
        })
        .ok_or_else(|| {
            format!("no free /{prefix} is left in the cluster CIDR {shown}: give --cidr")
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::node;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    #[test]
    fn the_shape_comes_from_the_nodes() {
        let mut big = node("big");
        big.max_pods = Some(250);
        let mut windows = node("win");
        windows
            .labels
            .insert("kubernetes.io/os".to_owned(), "windows".to_owned());
        let shape = shape_of(&[node("a"), big, windows], Family::V4, 4);
        assert_eq!(
            (
                shape.nodes,
                shape.pods_per_node,
                shape.windows,
                shape.max_blocks_per_host
            ),
            (3, 250, true, 4)
        );
        assert_eq!(shape_of(&[], Family::V4, 0).pods_per_node, 110);
    }

    #[test]
    fn auto_picks_the_advised_block_and_a_free_range_with_room() {
        let shape = shape_of(&[node("a"), node("b"), node("c")], Family::V4, 0);
        // 111 addresses a node: a /25 holds one node.
        let chosen = block_size(&shape).unwrap();
        assert_eq!(chosen.value, 25);
        assert!(
            chosen.why.contains("3 node(s) of up to 110 pods"),
            "{}",
            chosen.why
        );
        // 3 nodes of /26 blocks need two blocks each: 6 blocks fit a /23; doubled, a /22; the
        // old /16 is larger still, so a /16 is taken, past the pools already there.
        let taken = [net("10.0.0.0/16"), net("10.96.0.0/12")];
        let picked = cidr(
            &shape,
            26,
            &net("192.168.0.0/16"),
            &[net("10.0.0.0/8")],
            &taken,
        )
        .unwrap();
        assert_eq!(picked.value, net("10.1.0.0/16"));
        let small = cidr(
            &shape,
            26,
            &net("10.0.0.0/24"),
            &[net("10.0.0.0/8")],
            &taken,
        )
        .unwrap();
        assert_eq!(small.value, net("10.1.0.0/22"));
        let full = cidr(
            &shape,
            26,
            &net("10.0.0.0/16"),
            &[net("10.0.0.0/16")],
            &taken,
        );
        assert!(full.unwrap_err().contains("no free /16"));
        let shape6 = shape_of(&[node("a")], Family::V6, 0);
        let v6 = cidr(
            &shape6,
            122,
            &net("fd00::/64"),
            &[net("10.0.0.0/8")],
            &taken,
        );
        assert!(v6.unwrap_err().contains("no IPv6 range"));
    }
}
