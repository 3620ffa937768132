//! Step 1 of a resize: the temporary pool — its name, and a CIDR given with `--temp-cidr` or
//! found free inside the cluster CIDR, sized for the pool's pods and nodes.

use ipnet::IpNet;
use ippool_rules::cidr::{self, Family};
use ippool_rules::context::ClusterCidrs;

use super::{ResizeError, ResizeIntent};
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

/// The first range of length `prefix` inside one of `cluster` (of `family`) that overlaps none of
/// `taken`. Skips past taken ranges instead of walking every candidate, so that IPv6 ranges are
/// searched quickly.
pub(super) fn free_range(cluster: &[IpNet], taken: &[IpNet], prefix: u8) -> Option<IpNet> {
    for outer in cluster {
        if outer.prefix_len() > prefix {
            continue;
        }
        let family = Family::of(outer);
        let bits = family.bits();
        let size: u128 = 1u128 << (bits - prefix);
        let (start, end) = cidr::bounds(outer);
        let mut candidate = start;
        loop {
            let last = candidate.checked_add(size - 1)?;
            if last > end {
                break;
            }
            let clash = taken
                .iter()
                .filter(|t| Family::of(t) == family)
                .map(cidr::bounds)
                .filter(|(s, e)| *s <= last && *e >= candidate)
                .map(|(_, e)| e)
                .max();
            match clash {
                None => return net_at(family, candidate, prefix),
                Some(taken_end) => {
                    let next = taken_end.checked_add(1)?;
                    candidate = next.div_ceil(size).checked_mul(size)?;
                }
            }
        }
    }
    None
}

fn net_at(family: Family, start: u128, prefix: u8) -> Option<IpNet> {
    let address: std::net::IpAddr = match family {
        Family::V4 => std::net::Ipv4Addr::from(u32::try_from(start).ok()?).into(),
        Family::V6 => std::net::Ipv6Addr::from(start).into(),
    };
    IpNet::new(address, prefix).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

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

    #[test]
    fn free_ranges_skip_pools_and_blocks() {
        let cluster = [net("10.0.0.0/8")];
        let taken = [net("10.0.0.0/16"), net("10.1.0.0/26")];
        assert_eq!(free_range(&cluster, &taken, 24), Some(net("10.1.1.0/24")));
        assert_eq!(free_range(&cluster, &[], 24), Some(net("10.0.0.0/24")));
        // Full: nothing.
        assert_eq!(
            free_range(&[net("10.0.0.0/24")], &[net("10.0.0.0/24")], 25),
            None
        );
        // IPv6: a taken /64 inside a /48 is skipped at once.
        let v6 = [net("fd00:10::/48")];
        assert_eq!(
            free_range(&v6, &[net("fd00:10::/64")], 120),
            Some(net("fd00:10:0:1::/120"))
        );
        // Other families are ignored.
        assert_eq!(
            free_range(&v6, &[net("10.0.0.0/8")], 64),
            Some(net("fd00:10::/64"))
        );
    }
}
