//! Lookups the analyses share: which pool an address or block falls in, and every allocation
//! recorded in the IPAM blocks, by address.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

use ipnet::IpNet;
use ippool_rules::cidr;
use ippool_rules::model::{IpPool, IpamBlock};

use crate::names;

/// Pools by CIDR, most specific first, so that an address in overlapping pools (a state the rules
/// forbid but a cluster may hold) is attributed to the narrower one.
pub struct PoolIndex<'a> {
    pools: Vec<(IpNet, &'a IpPool)>,
}

impl<'a> PoolIndex<'a> {
    /// Pools whose CIDR does not parse are left out (the rules report them).
    pub fn new(pools: &'a [IpPool]) -> PoolIndex<'a> {
        let mut pools: Vec<(IpNet, &IpPool)> = pools
            .iter()
            .filter_map(|p| p.spec.cidr_net().map(|net| (cidr::canonical(&net), p)))
            .collect();
        pools.sort_by(|(a, pa), (b, pb)| {
            b.prefix_len()
                .cmp(&a.prefix_len())
                .then_with(|| pa.name().cmp(pb.name()))
        });
        PoolIndex { pools }
    }

    pub fn pool_of_addr(&self, addr: IpAddr) -> Option<&'a IpPool> {
        self.pools
            .iter()
            .find(|(net, _)| net.contains(&addr))
            .map(|(_, p)| *p)
    }

    /// The narrowest enabled pool holding `addr`.
    pub fn enabled_pool_of_addr(&self, addr: IpAddr) -> Option<&'a IpPool> {
        self.pools
            .iter()
            .find(|(net, p)| p.is_enabled() && net.contains(&addr))
            .map(|(_, p)| *p)
    }

    /// The pool a block belongs to: the one holding the block's first address (as Calico decides;
    /// a block wider than its pool still belongs to it).
    pub fn pool_of_block(&self, block: &IpNet) -> Option<&'a IpPool> {
        self.pool_of_addr(block.network())
    }
}

/// What an allocation is for, from its attributes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AllocationUse<'a> {
    /// A pod's address (`secondary.namespace`/`pod`).
    Workload { namespace: &'a str, pod: &'a str },
    /// A node's tunnel address (`secondary.type` = `ipipTunnelAddress`, `vxlanTunnelAddress`, …).
    Tunnel { node: &'a str, kind: &'a str },
    /// Neither recorded (another IPAM client, or attributes missing).
    Unknown,
}

/// One allocated address in a block.
#[derive(Debug, Clone)]
pub struct Allocation<'a> {
    pub address: IpAddr,
    pub block: &'a IpamBlock,
    pub ordinal: usize,
    pub handle_id: Option<&'a str>,
    pub secondary: Option<&'a BTreeMap<String, String>>,
}

impl<'a> Allocation<'a> {
    pub fn use_(&self) -> AllocationUse<'a> {
        let Some(secondary) = self.secondary else {
            return AllocationUse::Unknown;
        };
        let get = |k: &str| {
            secondary
                .get(k)
                .map(String::as_str)
                .filter(|v| !v.is_empty())
        };
        if let Some(kind) = get(names::ATTRIBUTE_TYPE)
            .filter(|t| t.ends_with("TunnelAddress") || t.contains("Wireguard"))
        {
            return AllocationUse::Tunnel {
                node: get(names::ATTRIBUTE_NODE).unwrap_or(""),
                kind,
            };
        }
        match (get(names::ATTRIBUTE_NAMESPACE), get(names::ATTRIBUTE_POD)) {
            (Some(namespace), Some(pod)) => AllocationUse::Workload { namespace, pod },
            _ => AllocationUse::Unknown,
        }
    }

    /// The node named in the attributes, else the block's host affinity.
    pub fn node(&self) -> Option<&'a str> {
        self.secondary
            .and_then(|s| s.get(names::ATTRIBUTE_NODE))
            .map(String::as_str)
            .filter(|n| !n.is_empty())
            .or_else(|| host_of_affinity(self.block.spec.affinity.as_deref()))
    }
}

/// `host:<node>` → `<node>`.
pub fn host_of_affinity(affinity: Option<&str>) -> Option<&str> {
    affinity.and_then(names::affinity_host)
}

/// Every allocation of one block. Entries pointing past `attributes` still count (with no
/// attributes): the address is taken either way.
pub fn allocations_of(block: &IpamBlock) -> impl Iterator<Item = Allocation<'_>> {
    let net = block.cidr();
    block
        .spec
        .allocations
        .iter()
        .enumerate()
        .filter_map(move |(ordinal, entry)| {
            let index = (*entry)?;
            let address = cidr::nth_address(&net?, ordinal as u128)?;
            let attribute = usize::try_from(index)
                .ok()
                .and_then(|i| block.spec.attributes.get(i));
            Some(Allocation {
                address,
                block,
                ordinal,
                handle_id: attribute.and_then(|a| a.handle_id.as_deref()),
                secondary: attribute.and_then(|a| a.secondary.as_ref()),
            })
        })
}

/// All allocations by address. Overlapping blocks (#3589) can allocate one address twice, hence
/// the `Vec`.
pub struct AllocationIndex<'a> {
    by_address: HashMap<IpAddr, Vec<Allocation<'a>>>,
}

impl<'a> AllocationIndex<'a> {
    pub fn new(blocks: &'a [IpamBlock]) -> AllocationIndex<'a> {
        let mut by_address: HashMap<IpAddr, Vec<Allocation<'a>>> = HashMap::new();
        for allocation in blocks.iter().flat_map(allocations_of) {
            by_address
                .entry(allocation.address)
                .or_default()
                .push(allocation);
        }
        AllocationIndex { by_address }
    }

    pub fn get(&self, address: &IpAddr) -> &[Allocation<'a>] {
        self.by_address.get(address).map_or(&[], Vec::as_slice)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Allocation<'a>> {
        self.by_address.values().flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::*;

    #[test]
    fn narrowest_pool_wins_and_blocks_follow_their_first_address() {
        let pools = vec![
            pool("wide", "10.0.0.0/16", None, false),
            pool("narrow", "10.0.1.0/24", None, true),
        ];
        let index = PoolIndex::new(&pools);
        let addr = "10.0.1.7".parse().unwrap();
        assert_eq!(index.pool_of_addr(addr).map(|p| p.name()), Some("narrow"));
        assert_eq!(
            index.enabled_pool_of_addr(addr).map(|p| p.name()),
            Some("wide")
        );
        assert_eq!(
            index
                .pool_of_block(&"10.0.2.0/26".parse().unwrap())
                .map(|p| p.name()),
            Some("wide")
        );
        assert!(index.pool_of_addr("10.1.0.1".parse().unwrap()).is_none());
    }

    #[test]
    fn allocations_carry_address_and_use() {
        let blocks = vec![block(
            "10.0.0.0/30",
            Some("sim-1"),
            &[
                (
                    0,
                    "ipip-tunnel-addr-sim-1",
                    &[("node", "sim-1"), ("type", "ipipTunnelAddress")],
                ),
                (
                    2,
                    "k8s-pod-network.abc",
                    &workload("shop", "web-1", "sim-1"),
                ),
            ],
        )];
        let index = AllocationIndex::new(&blocks);
        let tunnel = &index.get(&"10.0.0.0".parse().unwrap())[0];
        assert_eq!(
            tunnel.use_(),
            AllocationUse::Tunnel {
                node: "sim-1",
                kind: "ipipTunnelAddress"
            }
        );
        let pod = &index.get(&"10.0.0.2".parse().unwrap())[0];
        assert_eq!(
            pod.use_(),
            AllocationUse::Workload {
                namespace: "shop",
                pod: "web-1"
            }
        );
        assert_eq!(pod.node(), Some("sim-1"));
        assert!(index.get(&"10.0.0.1".parse().unwrap()).is_empty());
        assert_eq!(index.iter().count(), 2);
    }
}
