//! What the sim knows of the cluster: caches fed by watches and by the responses of its own writes.
//! Nothing here is authoritative — every write is conditional on the resourceVersion it was
//! computed from — so a stale entry costs a retry, never a double allocation.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::{Mutex, MutexGuard};

use ipnet::IpNet;
use ippool_cluster::allocation;
use ippool_rules::cidr::Family;
use ippool_rules::model::{BlockAffinity, IpPool, IpamBlock, IpamConfigSpec, ObjectMeta};
use k8s_openapi::api::core::v1::Taint;
use tokio::sync::watch;

/// A namespace as IPAM sees it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NamespaceInfo {
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
}

/// One of the sim's nodes as the scheduler and IPAM see it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NodeInfo {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub taints: Vec<Taint>,
    pub unschedulable: bool,
    pub internal_ip: Option<IpAddr>,
}

/// The watches whose initial list must be complete before the sim allocates anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Pools = 1,
    Blocks = 2,
    Affinities = 4,
    Config = 8,
    Namespaces = 16,
    Nodes = 32,
}

const ALL_SOURCES: u8 = 63;

#[derive(Default)]
struct Inner {
    pools: BTreeMap<String, IpPool>,
    config: Option<IpamConfigSpec>,
    namespaces: HashMap<String, NamespaceInfo>,
    nodes: HashMap<String, NodeInfo>,
    blocks: BTreeMap<IpNet, IpamBlock>,
    /// Handle ID → blocks holding addresses for it.
    handle_blocks: HashMap<String, BTreeSet<IpNet>>,
    affinities: HashMap<String, BlockAffinity>,
    /// Node → CIDRs of its BlockAffinities.
    node_affinities: HashMap<String, BTreeSet<IpNet>>,
}

pub struct Cluster {
    inner: Mutex<Inner>,
    synced: watch::Sender<u8>,
}

/// Resource versions are etcd revisions on every API server this sim meets; comparing them keeps
/// a late watch event from overwriting the response of a newer write. Unparseable versions are
/// taken as newer.
fn is_newer(candidate: &ObjectMeta, current: &ObjectMeta) -> bool {
    let parse = |m: &ObjectMeta| m.resource_version.as_deref()?.parse::<u64>().ok();
    match (parse(candidate), parse(current)) {
        (Some(c), Some(k)) => c >= k,
        _ => true,
    }
}

impl Inner {
    fn unindex_block(&mut self, cidr: &IpNet) {
        let Some(old) = self.blocks.get(cidr) else {
            return;
        };
        for attribute in &old.spec.attributes {
            if let Some(handle) = &attribute.handle_id
                && let Some(set) = self.handle_blocks.get_mut(handle)
            {
                set.remove(cidr);
                if set.is_empty() {
                    self.handle_blocks.remove(handle);
                }
            }
        }
    }

    fn put_block(&mut self, cidr: IpNet, block: IpamBlock) {
        self.unindex_block(&cidr);
        for attribute in &block.spec.attributes {
            if let Some(handle) = &attribute.handle_id {
                self.handle_blocks
                    .entry(handle.clone())
                    .or_default()
                    .insert(cidr);
            }
        }
        self.blocks.insert(cidr, block);
    }

    fn drop_block(&mut self, cidr: &IpNet) {
        self.unindex_block(cidr);
        self.blocks.remove(cidr);
    }

    fn put_affinity(&mut self, affinity: BlockAffinity) {
        let name = affinity.metadata.name.clone().unwrap_or_default();
        self.drop_affinity(&name);
        if affinity.spec.deleted != "true"
            && let Ok(cidr) = affinity.spec.cidr.parse::<IpNet>()
        {
            self.node_affinities
                .entry(affinity.spec.node.clone())
                .or_default()
                .insert(cidr.trunc());
        }
        self.affinities.insert(name, affinity);
    }

    fn drop_affinity(&mut self, name: &str) {
        let Some(old) = self.affinities.remove(name) else {
            return;
        };
        if let (Ok(cidr), Some(set)) = (
            old.spec.cidr.parse::<IpNet>(),
            self.node_affinities.get_mut(&old.spec.node),
        ) {
            set.remove(&cidr.trunc());
        }
    }
}

impl Cluster {
    pub fn new() -> Cluster {
        Cluster {
            inner: Mutex::new(Inner::default()),
            synced: watch::Sender::new(0),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock would be a bug elsewhere; the maps stay usable.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn mark_synced(&self, source: Source) {
        self.synced.send_modify(|bits| *bits |= source as u8);
    }

    /// Waits until every watch has delivered its initial list.
    pub async fn wait_synced(&self) {
        let mut rx = self.synced.subscribe();
        // The sender lives as long as `self`, so this only ends when synced.
        let _ = rx.wait_for(|bits| *bits == ALL_SOURCES).await;
    }

    // --- pools, config, namespaces, nodes: replaced whole by their watches ---

    pub fn set_pools(&self, pools: impl IntoIterator<Item = IpPool>) {
        self.lock().pools = pools
            .into_iter()
            .map(|p| (p.name().to_owned(), p))
            .collect();
    }

    pub fn put_pool(&self, pool: IpPool) {
        self.lock().pools.insert(pool.name().to_owned(), pool);
    }

    pub fn drop_pool(&self, name: &str) {
        self.lock().pools.remove(name);
    }

    /// Every pool, ordered by name as Calico lists them.
    pub fn pools(&self) -> Vec<IpPool> {
        self.lock().pools.values().cloned().collect()
    }

    pub fn set_config(&self, config: Option<IpamConfigSpec>) {
        self.lock().config = config;
    }

    /// The IPAMConfig in force; Calico's defaults when there is none.
    pub fn config(&self) -> IpamConfigSpec {
        self.lock().config.clone().unwrap_or(IpamConfigSpec {
            strict_affinity: false,
            auto_allocate_blocks: true,
            max_blocks_per_host: None,
        })
    }

    pub fn set_namespaces(&self, namespaces: HashMap<String, NamespaceInfo>) {
        self.lock().namespaces = namespaces;
    }

    pub fn put_namespace(&self, name: String, info: NamespaceInfo) -> bool {
        self.lock().namespaces.insert(name, info.clone()) != Some(info)
    }

    pub fn drop_namespace(&self, name: &str) {
        self.lock().namespaces.remove(name);
    }

    pub fn namespace(&self, name: &str) -> Option<NamespaceInfo> {
        self.lock().namespaces.get(name).cloned()
    }

    pub fn set_nodes(&self, nodes: HashMap<String, NodeInfo>) {
        self.lock().nodes = nodes;
    }

    /// Records a node; returns whether anything changed.
    pub fn put_node(&self, info: NodeInfo) -> bool {
        self.lock().nodes.insert(info.name.clone(), info.clone()) != Some(info)
    }

    pub fn drop_node(&self, name: &str) {
        self.lock().nodes.remove(name);
    }

    pub fn node(&self, name: &str) -> Option<NodeInfo> {
        self.lock().nodes.get(name).cloned()
    }

    pub fn nodes(&self) -> Vec<NodeInfo> {
        let mut nodes: Vec<NodeInfo> = self.lock().nodes.values().cloned().collect();
        nodes.sort_by(|a, b| a.name.cmp(&b.name));
        nodes
    }

    // --- blocks ---

    /// Records a block read from the API unless the cache holds a newer version.
    pub fn observe_block(&self, block: IpamBlock) {
        let Some(cidr) = block.cidr() else { return };
        let mut inner = self.lock();
        if inner
            .blocks
            .get(&cidr)
            .is_none_or(|cached| is_newer(&block.metadata, &cached.metadata))
        {
            inner.put_block(cidr, block);
        }
    }

    /// Forgets a deleted block unless the cache holds a newer version (re-created since).
    pub fn observe_block_deleted(&self, block: &IpamBlock) {
        let Some(cidr) = block.cidr() else { return };
        let mut inner = self.lock();
        if inner
            .blocks
            .get(&cidr)
            .is_some_and(|cached| is_newer(&block.metadata, &cached.metadata))
        {
            inner.drop_block(&cidr);
        }
    }

    /// Forgets a block the sim deleted (or found gone).
    pub fn forget_block(&self, cidr: &IpNet) {
        self.lock().drop_block(cidr);
    }

    /// Replaces the blocks with a complete list, keeping cached entries newer than the list.
    pub fn relist_blocks(&self, blocks: Vec<IpamBlock>) {
        let mut inner = self.lock();
        let listed: BTreeMap<IpNet, IpamBlock> = blocks
            .into_iter()
            .filter_map(|b| Some((b.cidr()?, b)))
            .collect();
        let newest = listed
            .values()
            .filter_map(|b| b.metadata.resource_version.as_deref()?.parse::<u64>().ok())
            .max()
            .unwrap_or(0);
        let gone: Vec<IpNet> = inner
            .blocks
            .iter()
            .filter(|(cidr, cached)| {
                !listed.contains_key(cidr)
                    && cached
                        .metadata
                        .resource_version
                        .as_deref()
                        .and_then(|v| v.parse::<u64>().ok())
                        .is_none_or(|v| v <= newest)
            })
            .map(|(cidr, _)| *cidr)
            .collect();
        for cidr in gone {
            inner.drop_block(&cidr);
        }
        for (cidr, block) in listed {
            if inner
                .blocks
                .get(&cidr)
                .is_none_or(|cached| is_newer(&block.metadata, &cached.metadata))
            {
                inner.put_block(cidr, block);
            }
        }
    }

    pub fn block(&self, cidr: &IpNet) -> Option<IpamBlock> {
        self.lock().blocks.get(cidr).cloned()
    }

    /// Existing blocks inside `pool` with a free address, in address order.
    pub fn blocks_with_room_in(&self, pool: &IpNet) -> Vec<IpNet> {
        let inner = self.lock();
        let start = IpNet::new(pool.network(), 0).unwrap_or(*pool);
        inner
            .blocks
            .range(start..)
            .take_while(|(cidr, _)| pool.contains(&cidr.network()))
            .filter(|(cidr, block)| {
                cidr.prefix_len() >= pool.prefix_len() && allocation::free_count(block) > 0
            })
            .map(|(cidr, _)| *cidr)
            .collect()
    }

    /// Addresses held by `handle_id`, with the blocks they are in.
    pub fn handle_addresses(&self, handle_id: &str) -> Vec<(IpNet, IpAddr)> {
        let inner = self.lock();
        let Some(cidrs) = inner.handle_blocks.get(handle_id) else {
            return Vec::new();
        };
        cidrs
            .iter()
            .filter_map(|cidr| Some((*cidr, inner.blocks.get(cidr)?)))
            .flat_map(|(cidr, block)| {
                allocation::handle_addresses(block, handle_id)
                    .unwrap_or_default()
                    .into_iter()
                    .map(move |a| (cidr, a))
            })
            .collect()
    }

    /// Blocks holding addresses for `handle_id`.
    pub fn handle_blocks(&self, handle_id: &str) -> BTreeSet<IpNet> {
        self.lock()
            .handle_blocks
            .get(handle_id)
            .cloned()
            .unwrap_or_default()
    }

    /// Handle IDs of allocations whose `node` attribute names `node`.
    pub fn handles_on_node(&self, node: &str) -> BTreeSet<String> {
        let inner = self.lock();
        inner
            .blocks
            .values()
            .filter_map(|b| allocation::allocations(b).ok())
            .flatten()
            .filter(|a| a.secondary(ippool_cluster::names::ATTRIBUTE_NODE) == Some(node))
            .filter_map(|a| a.handle_id().map(str::to_owned))
            .collect()
    }

    /// Who holds `address` (handle ID and `secondary` attributes), if anyone.
    pub fn owner_of(&self, address: IpAddr) -> Option<(String, BTreeMap<String, String>)> {
        let inner = self.lock();
        let block = inner
            .blocks
            .iter()
            .rev()
            .find(|(cidr, _)| cidr.contains(&address))?
            .1;
        allocation::allocations(block)
            .ok()?
            .into_iter()
            .find(|a| a.address == address)
            .map(|a| {
                (
                    a.handle_id().unwrap_or_default().to_owned(),
                    a.attribute.secondary.clone().unwrap_or_default(),
                )
            })
    }

    // --- block affinities ---

    pub fn observe_affinity(&self, affinity: BlockAffinity) {
        let name = affinity.metadata.name.clone().unwrap_or_default();
        let mut inner = self.lock();
        if inner
            .affinities
            .get(&name)
            .is_none_or(|cached| is_newer(&affinity.metadata, &cached.metadata))
        {
            inner.put_affinity(affinity);
        }
    }

    pub fn observe_affinity_deleted(&self, affinity: &BlockAffinity) {
        let name = affinity.metadata.name.clone().unwrap_or_default();
        let mut inner = self.lock();
        if inner
            .affinities
            .get(&name)
            .is_some_and(|cached| is_newer(&affinity.metadata, &cached.metadata))
        {
            inner.drop_affinity(&name);
        }
    }

    pub fn forget_affinity(&self, name: &str) {
        self.lock().drop_affinity(name);
    }

    pub fn relist_affinities(&self, affinities: Vec<BlockAffinity>) {
        let mut inner = self.lock();
        inner.affinities.clear();
        inner.node_affinities.clear();
        for affinity in affinities {
            inner.put_affinity(affinity);
        }
    }

    pub fn affinity(&self, name: &str) -> Option<BlockAffinity> {
        self.lock().affinities.get(name).cloned()
    }

    /// CIDRs of the node's block affinities of a family (Calico lists affinities of any state,
    /// except those marked deleted).
    pub fn affine_blocks(&self, node: &str, family: Family) -> Vec<IpNet> {
        let inner = self.lock();
        inner
            .node_affinities
            .get(node)
            .map(|set| {
                set.iter()
                    .filter(|cidr| Family::of(cidr) == family)
                    .copied()
                    .collect()
            })
            .unwrap_or_default()
    }
}
