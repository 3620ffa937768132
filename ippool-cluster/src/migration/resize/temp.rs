//! Step 1 of a resize: the temporary pool — its name, and a CIDR given with `--temp-cidr` or
//! found free inside the cluster CIDR, sized for the pool's pods and nodes.

use ipnet::IpNet;
use ippool_rules::cidr::{self, Family};
use ippool_rules::context::ClusterCidrs;

use super::{ResizeError, ResizeIntent};
use ippool_ipam::free_range::free_range;
use ippool_ipam::snapshot::Snapshot;

/// The temporary pool's name for pool `name`.
pub(super) fn temp_name(name: &str) -> String {
    format!("{name}-resize-tmp")
}

/// The temporary pool's CIDR for pool `intent.name` (CIDR `net`, blockSize `block_size`), and
/// where it came from, for the text.
pub(super) fn choose_cidr(
    intent: &ResizeIntent,
    snapshot: &Snapshot,
    net: &IpNet,
    block_size: Option<u8>,
    cluster_cidrs: Option<&ClusterCidrs>,
) -> Result<(IpNet, String), ResizeError> {
    if let Some(given) = intent.temp_cidr {
        return Ok((given, "given with --temp-cidr".to_owned()));
    }
    let family = Family::of(net);
    let cluster: Vec<IpNet> = cluster_cidrs
        .into_iter()
        .flat_map(|c| c.cidrs.iter().copied())
        .filter(|c| Family::of(c) == family)
        .collect();
    if cluster.is_empty() {
        return Err(ResizeError::NoClusterCidr {
            name: intent.name.clone(),
        });
    }
    let pods = snapshot
        .pods
        .iter()
        .filter(|p| p.holds_addresses() && p.addresses.iter().any(|a| net.contains(a)))
        .count();
    let nodes = snapshot.nodes.len();
    let block_size = block_size.unwrap_or(cidr::default_block_size(family));
    let prefix = temp_prefix(family, pods, nodes, nodes, block_size);
    let taken: Vec<IpNet> = snapshot
        .pools
        .iter()
        .filter_map(|p| p.spec.cidr_net())
        .chain(snapshot.blocks.iter().filter_map(|b| b.cidr()))
        .collect();
    let picked = free_range(&cluster, &taken, prefix).ok_or_else(|| ResizeError::NoFreeRange {
        prefix,
        cluster: cluster
            .iter()
            .map(IpNet::to_string)
            .collect::<Vec<_>>()
            .join(", "),
    })?;
    Ok((
        picked,
        format!("a free range inside the cluster CIDR, sized for {pods} pod(s) on {nodes} node(s)"),
    ))
}

/// The prefix of a temporary pool that holds `pods` pods and `tunnels` tunnel addresses with
/// room to spare, and one `block_size` block for each of `nodes` nodes: twice the addresses
/// needed, rounded up to a power of two, never smaller than one block.
pub(super) fn temp_prefix(
    family: Family,
    pods: usize,
    tunnels: usize,
    nodes: usize,
    block_size: u8,
) -> u8 {
    let bits = family.bits();
    let block = 1u128 << (bits - block_size);
    let needed = ((pods + tunnels) as u128 * 2)
        .max(block * nodes.max(1) as u128)
        .max(block);
    let exponent = 128 - (needed - 1).leading_zeros() as u8;
    bits.saturating_sub(exponent.min(bits)).min(block_size)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temporary_pools_are_sized_for_pods_and_nodes() {
        // 10 pods on 3 nodes with /26 blocks: 3 blocks of 64 addresses → /24.
        assert_eq!(temp_prefix(Family::V4, 10, 3, 3, 26), 24);
        // 3000 pods: 6006 addresses → 8192 → /19.
        assert_eq!(temp_prefix(Family::V4, 3000, 3, 3, 26), 19);
        // Never smaller than one block.
        assert_eq!(temp_prefix(Family::V4, 0, 0, 0, 28), 28);
        assert_eq!(temp_prefix(Family::V6, 5, 0, 2, 122), 121);
    }
}
