//! IPAM consistency, the questions `calicoctl ipam check` asks, over a [`Snapshot`]:
//! allocations no pod or node uses (leaked), pods whose address has no allocation, pod addresses
//! outside every enabled pool, handles no allocation refers to — plus what calicoctl does not look
//! at: blocks no pool covers, blocks whose prefix is not their pool's blockSize, stale affinities.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;

use serde::Serialize;

use crate::index::{Allocation, AllocationIndex, AllocationUse, PoolIndex};
use crate::snapshot::{PodInfo, Snapshot};

/// The classes of problem `check` reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProblemKind {
    /// An allocation no live pod or existing node uses.
    LeakedAllocation,
    /// A live pod's address, inside an enabled pool, with no allocation.
    PodWithoutAllocation,
    /// A live pod's address with no allocation and outside every enabled pool.
    OutsideActivePools,
    /// An IPAMHandle no allocation refers to.
    HandleWithoutAddresses,
    /// An IPAM block no pool covers.
    BlockWithoutPool,
    /// An IPAM block inside a pool whose prefix is not the pool's blockSize.
    BlockSizeMismatch,
    /// A block affinity whose node or block is gone, or whose release stopped half-way.
    StaleAffinity,
}

impl ProblemKind {
    pub const ALL: [ProblemKind; 7] = [
        ProblemKind::LeakedAllocation,
        ProblemKind::PodWithoutAllocation,
        ProblemKind::OutsideActivePools,
        ProblemKind::HandleWithoutAddresses,
        ProblemKind::BlockWithoutPool,
        ProblemKind::BlockSizeMismatch,
        ProblemKind::StaleAffinity,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ProblemKind::LeakedAllocation => "leaked-allocation",
            ProblemKind::PodWithoutAllocation => "pod-without-allocation",
            ProblemKind::OutsideActivePools => "outside-active-pools",
            ProblemKind::HandleWithoutAddresses => "handle-without-addresses",
            ProblemKind::BlockWithoutPool => "block-without-pool",
            ProblemKind::BlockSizeMismatch => "block-size-mismatch",
            ProblemKind::StaleAffinity => "stale-affinity",
        }
    }

    /// Heading for the text report.
    pub fn title(self) -> &'static str {
        match self {
            ProblemKind::LeakedAllocation => {
                "addresses allocated in IPAM but used by no pod or node"
            }
            ProblemKind::PodWithoutAllocation => {
                "pod addresses in an enabled pool with no IPAM allocation"
            }
            ProblemKind::OutsideActivePools => {
                "pod addresses with no IPAM allocation outside every enabled pool"
            }
            ProblemKind::HandleWithoutAddresses => "IPAM handles with no allocated address",
            ProblemKind::BlockWithoutPool => "IPAM blocks that no pool covers",
            ProblemKind::BlockSizeMismatch => {
                "IPAM blocks whose size is not their pool's blockSize"
            }
            ProblemKind::StaleAffinity => "stale block affinities",
        }
    }

    /// What to do about it.
    pub fn remedy(self) -> &'static str {
        match self {
            ProblemKind::LeakedAllocation => {
                "Calico's IPAM garbage collector releases these after its grace period; `kubectl ippool \
                 delete --release-leaked` releases them in a pool being deleted"
            }
            ProblemKind::PodWithoutAllocation | ProblemKind::OutsideActivePools => {
                "another pod can be given the same address; recreate the pod so that Calico allocates it \
                 an address"
            }
            ProblemKind::HandleWithoutAddresses => {
                "harmless leftovers of released addresses; Calico's IPAM garbage collector removes them"
            }
            ProblemKind::BlockWithoutPool => {
                "`kubectl ippool gc` removes the empty ones; non-empty ones still hold addresses"
            }
            ProblemKind::BlockSizeMismatch => {
                "left by a pool recreated with another blockSize; `kubectl ippool gc` removes the empty \
                 ones; non-empty ones hold addresses until their pods are recreated"
            }
            ProblemKind::StaleAffinity => {
                "`kubectl ippool gc` removes those whose block is empty or missing; the others wait \
                 until their block's addresses are released"
            }
        }
    }
}

/// One problem found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Problem {
    pub kind: ProblemKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<IpAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub block: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ordinal: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub handle: Option<String>,
    /// `namespace/name`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pod: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pool: Option<String>,
    /// The BlockAffinity's name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub affinity: Option<String>,
    pub message: String,
}

/// What was looked at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Checked {
    pub pools: usize,
    pub enabled_pools: usize,
    pub blocks: usize,
    pub affinities: usize,
    pub allocations: usize,
    pub handles: usize,
    pub pods_with_addresses: usize,
    pub nodes: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CheckReport {
    pub checked: Checked,
    pub problems: Vec<Problem>,
}

impl CheckReport {
    pub fn count(&self, kind: ProblemKind) -> usize {
        self.problems.iter().filter(|p| p.kind == kind).count()
    }

    pub fn is_clean(&self) -> bool {
        self.problems.is_empty()
    }
}

/// An allocation leaked by a pod that is gone, with what is needed to release it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LeakedAllocation {
    pub address: IpAddr,
    pub block: String,
    pub ordinal: usize,
    pub handle: Option<String>,
    /// The pod the attributes name, `namespace/name`.
    pub pod: Option<String>,
    pub node: Option<String>,
    /// The pool holding the address.
    pub pool: Option<String>,
}

/// Who uses addresses and handles, from live pods and nodes.
struct Users<'a> {
    pod_addresses: HashMap<IpAddr, Vec<&'a PodInfo>>,
    pod_handles: HashSet<String>,
    /// (namespace, name) → the pod.
    pods_by_name: HashMap<(&'a str, &'a str), &'a PodInfo>,
    nodes: HashSet<&'a str>,
    node_addresses: HashSet<IpAddr>,
}

impl<'a> Users<'a> {
    fn new(snapshot: &'a Snapshot) -> Users<'a> {
        let mut pod_addresses: HashMap<IpAddr, Vec<&PodInfo>> = HashMap::new();
        let mut pod_handles = HashSet::new();
        let mut pods_by_name = HashMap::new();
        for pod in snapshot
            .pods
            .iter()
            .filter(|p| p.is_live() && !p.host_network)
        {
            for addr in &pod.addresses {
                pod_addresses.entry(*addr).or_default().push(pod);
            }
            if let Some(handle) = pod.handle_id() {
                pod_handles.insert(handle.to_lowercase());
            }
            pods_by_name.insert((pod.namespace.as_str(), pod.name.as_str()), pod);
        }
        Users {
            pod_addresses,
            pod_handles,
            pods_by_name,
            nodes: snapshot.nodes.iter().map(|n| n.name.as_str()).collect(),
            node_addresses: snapshot
                .nodes
                .iter()
                .flat_map(|n| n.tunnel_addresses.iter().copied())
                .collect(),
        }
    }

    /// Whether a live pod or an existing node uses the allocation.
    fn uses(&self, allocation: &Allocation<'_>) -> bool {
        if self.pod_addresses.contains_key(&allocation.address)
            || self.node_addresses.contains(&allocation.address)
        {
            return true;
        }
        if allocation
            .handle_id
            .is_some_and(|h| self.pod_handles.contains(&h.to_lowercase()))
        {
            return true;
        }
        match allocation.use_() {
            AllocationUse::Tunnel { node, .. } => self.nodes.contains(node),
            // The CNI allocates before the pod's status shows the address: a named live pod
            // with no address yet is still being set up.
            AllocationUse::Workload { namespace, pod } => self
                .pods_by_name
                .get(&(namespace, pod))
                .is_some_and(|p| p.addresses.is_empty()),
            AllocationUse::Unknown => false,
        }
    }
}

fn pod_of(allocation: &Allocation<'_>) -> Option<String> {
    match allocation.use_() {
        AllocationUse::Workload { namespace, pod } => Some(format!("{namespace}/{pod}")),
        _ => None,
    }
}

fn block_name(allocation: &Allocation<'_>) -> String {
    allocation
        .block
        .metadata
        .name
        .clone()
        .unwrap_or_else(|| allocation.block.spec.cidr.clone())
}

/// Allocations that no live pod or existing node uses, sorted by address.
pub fn leaked_allocations(snapshot: &Snapshot) -> Vec<LeakedAllocation> {
    let users = Users::new(snapshot);
    let pools = PoolIndex::new(&snapshot.pools);
    let allocations = AllocationIndex::new(&snapshot.blocks);
    let mut leaked: Vec<LeakedAllocation> = allocations
        .iter()
        .filter(|a| !users.uses(a))
        .map(|a| LeakedAllocation {
            address: a.address,
            block: block_name(a),
            ordinal: a.ordinal,
            handle: a.handle_id.map(str::to_owned),
            pod: pod_of(a),
            node: a.node().map(str::to_owned),
            pool: pools.pool_of_addr(a.address).map(|p| p.name().to_owned()),
        })
        .collect();
    leaked.sort_by(|a, b| (a.address, &a.block).cmp(&(b.address, &b.block)));
    leaked
}

/// Runs every check.
pub fn check(snapshot: &Snapshot) -> CheckReport {
    let pools = PoolIndex::new(&snapshot.pools);
    let allocations = AllocationIndex::new(&snapshot.blocks);
    let mut problems = Vec::new();

    for leak in leaked_allocations(snapshot) {
        let whose = match (&leak.pod, &leak.node) {
            (Some(pod), _) => format!("pod {pod}, which no longer holds it"),
            (None, Some(node)) => format!("node {node}"),
            (None, None) => "no recorded owner".to_owned(),
        };
        problems.push(Problem {
            kind: ProblemKind::LeakedAllocation,
            message: format!(
                "{} is allocated in block {} for {whose}",
                leak.address, leak.block
            ),
            address: Some(leak.address),
            block: Some(leak.block),
            ordinal: Some(leak.ordinal),
            handle: leak.handle,
            pod: leak.pod,
            node: leak.node,
            pool: leak.pool,
            affinity: None,
        });
    }

    let mut pod_addresses: Vec<(&PodInfo, IpAddr)> = snapshot
        .pods
        .iter()
        .filter(|p| p.holds_addresses())
        .flat_map(|p| p.addresses.iter().map(move |a| (p, *a)))
        .collect();
    pod_addresses.sort_by(|(pa, a), (pb, b)| (a, pa.key()).cmp(&(b, pb.key())));
    for (pod, address) in pod_addresses {
        if !allocations.get(&address).is_empty() {
            continue;
        }
        let (kind, message) = match pools.enabled_pool_of_addr(address) {
            Some(pool) => (
                ProblemKind::PodWithoutAllocation,
                format!(
                    "pod {} uses {address} in pool {} but IPAM has no allocation for it",
                    pod.key(),
                    pool.name()
                ),
            ),
            None => (
                ProblemKind::OutsideActivePools,
                format!(
                    "pod {} uses {address}, which no IPAM block allocates and no enabled pool contains{}",
                    pod.key(),
                    pools
                        .pool_of_addr(address)
                        .map(|p| format!(" (it is in disabled pool {})", p.name()))
                        .unwrap_or_default()
                ),
            ),
        };
        problems.push(Problem {
            kind,
            address: Some(address),
            block: None,
            ordinal: None,
            handle: pod.handle_id(),
            pod: Some(pod.key()),
            node: pod.node.clone(),
            pool: pools.pool_of_addr(address).map(|p| p.name().to_owned()),
            affinity: None,
            message,
        });
    }

    let referenced: HashSet<String> = allocations
        .iter()
        .filter_map(|a| a.handle_id.map(str::to_lowercase))
        .collect();
    let mut handles: Vec<_> = snapshot
        .handles
        .iter()
        .filter(|h| !referenced.contains(&h.spec.handle_id.to_lowercase()))
        .collect();
    handles.sort_by(|a, b| a.spec.handle_id.cmp(&b.spec.handle_id));
    for handle in handles {
        problems.push(Problem {
            kind: ProblemKind::HandleWithoutAddresses,
            address: None,
            block: None,
            ordinal: None,
            handle: Some(handle.spec.handle_id.clone()),
            pod: None,
            node: None,
            pool: None,
            affinity: None,
            message: format!(
                "handle {} has no allocated address in any block",
                handle.spec.handle_id
            ),
        });
    }

    problems.extend(block_problems(snapshot));
    problems.extend(affinity_problems(snapshot));

    CheckReport {
        checked: Checked {
            pools: snapshot.pools.len(),
            enabled_pools: snapshot.pools.iter().filter(|p| p.is_enabled()).count(),
            blocks: snapshot.blocks.len(),
            affinities: snapshot.affinities.len(),
            allocations: allocations.iter().count(),
            handles: snapshot.handles.len(),
            pods_with_addresses: snapshot.pods.iter().filter(|p| p.holds_addresses()).count(),
            nodes: snapshot.nodes.len(),
        },
        problems,
    }
}

/// Blocks no pool covers and blocks whose prefix is not their pool's blockSize, by address.
fn block_problems(snapshot: &Snapshot) -> Vec<Problem> {
    crate::usage::block_uses(snapshot)
        .iter()
        .filter_map(|block| {
            let (kind, message) = match (block.pool, block.pool_block_size) {
                (None, _) => (
                    ProblemKind::BlockWithoutPool,
                    format!("block {} ({}) is in no pool", block.name, block.cidr),
                ),
                (Some(pool), Some(size)) if block.size_mismatch() => (
                    ProblemKind::BlockSizeMismatch,
                    format!(
                        "block {} ({}) is a /{} in pool {pool}, whose blockSize is {size}",
                        block.name,
                        block.cidr,
                        block.cidr.prefix_len()
                    ),
                ),
                _ => return None,
            };
            Some(Problem {
                kind,
                address: None,
                block: Some(block.name.to_owned()),
                ordinal: None,
                handle: None,
                pod: None,
                node: block.node.map(str::to_owned),
                pool: block.pool.map(str::to_owned),
                affinity: None,
                message: format!(
                    "{message}; {} of {} addresses in use",
                    block.in_use, block.size
                ),
            })
        })
        .collect()
}

/// Affinities that no longer do their job, as `gc` sees them, by name.
fn affinity_problems(snapshot: &Snapshot) -> Vec<Problem> {
    let mut stale = crate::gc::stale_affinities(snapshot);
    stale.sort_by(|a, b| a.affinity.name.cmp(&b.affinity.name));
    stale
        .into_iter()
        .map(|stale| {
            let in_use = match stale.block_in_use {
                0 => String::new(),
                n => format!("; its block has {n} address(es) in use"),
            };
            Problem {
                kind: ProblemKind::StaleAffinity,
                address: None,
                message: format!(
                    "affinity {} of {} for node {}: {}{in_use}",
                    stale.affinity.name,
                    stale.affinity.cidr,
                    stale.affinity.node,
                    stale.reason.describe()
                ),
                block: stale.block.map(|b| b.name),
                ordinal: None,
                handle: None,
                pod: None,
                node: Some(stale.affinity.node),
                pool: None,
                affinity: Some(stale.affinity.name),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests;
