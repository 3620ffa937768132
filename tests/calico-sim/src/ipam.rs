//! Calico IPAM over the Kubernetes API (libcalico-go `lib/ipam`, calico-ipam.md §4): a node uses
//! its affine blocks first, then claims a new block (BlockAffinity pending → IPAMBlock created with
//! `affinity: host:<node>` → affinity confirmed), then, unless strictAffinity, borrows from any
//! block of the pools. Every block write is a replace conditional on the version read, retried
//! with a fresh read on conflict; writes to one block from this process are serialised.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use ipnet::IpNet;
use ippool_cluster::allocation::{self, AffinityState, BlockError};
use ippool_cluster::names;
use ippool_cluster::resources::{CalicoApi, ResourceError};
use ippool_cluster::selection::{self, PoolRequest, SelectionError};
use ippool_rules::cidr::Family;
use ippool_rules::model::{AllowedUse, BlockAffinity, IpamBlock, IpamHandle};
use kube::Client;
use thiserror::Error;
use tracing::{debug, info};

use crate::cluster::Cluster;

/// Attempts at one conditional write before giving up (Calico uses 100 datastore retries; the
/// sim serialises its own writers, so only other processes can conflict).
const WRITE_ATTEMPTS: usize = 30;
/// Calico's per-node block limit when IPAMConfig sets none.
const DEFAULT_MAX_BLOCKS_PER_HOST: usize = 20;

#[derive(Debug, Error)]
pub enum IpamError {
    #[error(transparent)]
    Selection(#[from] SelectionError),
    #[error("Assigned 0 out of 1 requested {family} addresses{}", messages.iter().map(|m| format!("; {m}")).collect::<String>())]
    Exhausted {
        family: Family,
        messages: Vec<String>,
    },
    #[error(
        "cannot allocate new block due to per host block limit: node {node} already has {limit} blocks (IPAMConfig maxBlocksPerHost)"
    )]
    BlockLimit { node: String, limit: usize },
    #[error(transparent)]
    Block(#[from] BlockError),
    #[error(transparent)]
    Api(#[from] ResourceError),
    #[error(
        "{what}: still conflicting after {WRITE_ATTEMPTS} attempts (too many concurrent IPAM writers)"
    )]
    Contention { what: String },
}

/// One address wanted.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    pub node: &'a str,
    pub family: Family,
    pub handle_id: &'a str,
    /// The allocation's `secondary` attributes (node, namespace, pod, timestamp / type).
    pub secondary: &'a BTreeMap<String, String>,
    pub use_: AllowedUse,
    /// Pools named by annotation (or, for tunnels, the pools calico-node picked), as CIDRs.
    pub requested: &'a [IpNet],
    pub namespace_labels: Option<&'a BTreeMap<String, String>>,
}

/// Whether a block claim went through.
enum Claim {
    Claimed,
    /// Another node created the block first.
    Taken,
}

pub struct Ipam {
    cluster: Arc<Cluster>,
    blocks: CalicoApi<IpamBlock>,
    affinities: CalicoApi<BlockAffinity>,
    handles: CalicoApi<IpamHandle>,
    locks: Mutex<HashMap<IpNet, Arc<tokio::sync::Mutex<()>>>>,
}

fn now_nanos() -> i64 {
    k8s_openapi::jiff::Timestamp::now()
        .as_nanosecond()
        .try_into()
        .unwrap_or(i64::MAX)
}

impl Ipam {
    pub fn new(client: Client, cluster: Arc<Cluster>) -> Ipam {
        Ipam {
            cluster,
            blocks: CalicoApi::new(client.clone()),
            affinities: CalicoApi::new(client.clone()),
            handles: CalicoApi::new(client),
            locks: Mutex::new(HashMap::new()),
        }
    }

    fn block_lock(&self, cidr: IpNet) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.locks.lock().unwrap_or_else(|e| e.into_inner());
        locks.entry(cidr).or_default().clone()
    }

    /// The block as cached, or read when the cache does not have it.
    async fn read_block(&self, cidr: IpNet) -> Result<Option<IpamBlock>, IpamError> {
        match self.cluster.block(&cidr) {
            Some(block) if block.spec.deleted != Some(true) => Ok(Some(block)),
            _ => self.reread_block(cidr).await,
        }
    }

    async fn reread_block(&self, cidr: IpNet) -> Result<Option<IpamBlock>, IpamError> {
        match self.blocks.get(&names::block_name(&cidr)).await? {
            Some(block) if block.spec.deleted == Some(true) => {
                // A deletion cut short after the block was marked: finish it, as Calico's
                // datastore does when it reads such a block.
                if let Err(e) = self.blocks.delete_read(&block).await
                    && !e.is_conflict()
                {
                    return Err(e.into());
                }
                self.cluster.forget_block(&cidr);
                Ok(None)
            }
            Some(block) => {
                self.cluster.observe_block(block.clone());
                Ok(Some(block))
            }
            None => {
                self.cluster.forget_block(&cidr);
                Ok(None)
            }
        }
    }

    /// Assigns one address, as Calico's `AutoAssign` does for one family.
    pub async fn auto_assign(&self, request: &Request<'_>) -> Result<(IpNet, IpAddr), IpamError> {
        let pools = self.cluster.pools();
        let usable = selection::usable_pools(&pools, request.family);
        let node_labels = self
            .cluster
            .node(request.node)
            .map(|n| n.labels)
            .unwrap_or_default();
        let selected = selection::select_pools(
            &usable,
            &PoolRequest {
                node: request.node,
                node_labels: &node_labels,
                namespace_labels: request.namespace_labels,
                requested: request.requested,
                use_: request.use_.clone(),
            },
        )?;
        let config = self.cluster.config();
        let strict = config.strict_affinity;

        let mut affine = Vec::new();
        for cidr in self.cluster.affine_blocks(request.node, request.family) {
            if selection::containing_pool(&selected.allowed, &cidr).is_some() {
                affine.push(cidr);
            } else if selection::containing_pool(&selected.selecting_node, &cidr).is_none()
                && let Some(pool) = selection::containing_pool(&usable, &cidr)
                && !pool.selects_node(&node_labels)?
            {
                // Calico lets go of emptied blocks whose (enabled) pool no longer selects the node.
                self.release_affinity_if_empty(request.node, cidr).await?;
            }
        }

        for cidr in &affine {
            let name = names::block_affinity_name(request.node, cidr);
            let confirmed = self
                .cluster
                .affinity(&name)
                .is_some_and(|a| a.spec.state == AffinityState::Confirmed.as_str());
            if (!confirmed || self.read_block(*cidr).await?.is_none())
                && let Claim::Taken = self.claim_block(request.node, *cidr).await?
            {
                // A claim cut short (pending affinity, or an affinity without its block) is
                // finished as Calico finishes it; here another node had the block.
                continue;
            }
            if let Some(found) = self.assign_from(request, *cidr, strict).await? {
                return Ok(found);
            }
        }

        let limit = match config.max_blocks_per_host {
            Some(n) if n > 0 => n as usize,
            _ => DEFAULT_MAX_BLOCKS_PER_HOST,
        };
        if affine.len() >= limit {
            return Err(IpamError::BlockLimit {
                node: request.node.to_owned(),
                limit,
            });
        }

        let mut messages = Vec::new();
        if config.auto_allocate_blocks {
            for _ in 0..WRITE_ATTEMPTS {
                let Some(candidate) = self.find_usable_block(&selected.allowed, request.node)
                else {
                    if strict {
                        messages.push(
                            "No more free affine blocks and strict affinity enabled".to_owned(),
                        );
                    }
                    break;
                };
                match self.claim_block(request.node, candidate).await? {
                    Claim::Taken => continue,
                    Claim::Claimed => {
                        if let Some(found) = self.assign_from(request, candidate, strict).await? {
                            return Ok(found);
                        }
                    }
                }
            }
        }

        if !strict {
            let mut exhausted = Vec::new();
            for pool in &selected.allowed {
                for cidr in self.cluster.blocks_with_room_in(&pool.cidr) {
                    if let Some(found) = self.assign_from(request, cidr, false).await? {
                        return Ok(found);
                    }
                }
                exhausted.push(pool.cidr.to_string());
            }
            messages.push(format!(
                "No IPs available in pools: [{}]",
                exhausted.join(" ")
            ));
        }
        Err(IpamError::Exhausted {
            family: request.family,
            messages,
        })
    }

    /// A block of the pools not yet created, or one already affine to this node with room
    /// (Calico's `findUsableBlock`, which checks only for a block of exactly that CIDR).
    fn find_usable_block(&self, pools: &[selection::UsablePool<'_>], node: &str) -> Option<IpNet> {
        pools.iter().find_map(|pool| {
            allocation::block_search_order(&pool.cidr, pool.block_size, node).find(
                |cidr| match self.cluster.block(cidr) {
                    None => true,
                    Some(block) => {
                        allocation::affine_node(&block) == Some(node)
                            && allocation::free_count(&block) > 0
                    }
                },
            )
        })
    }

    /// Takes one free address of a block; `None` when the block has none (or is gone, or, with
    /// `affinity_check`, is not affine to the node).
    async fn assign_from(
        &self,
        request: &Request<'_>,
        cidr: IpNet,
        affinity_check: bool,
    ) -> Result<Option<(IpNet, IpAddr)>, IpamError> {
        let lock = self.block_lock(cidr);
        let _serialised = lock.lock().await;
        let Some(mut block) = self.read_block(cidr).await? else {
            return Ok(None);
        };
        for _ in 0..WRITE_ATTEMPTS {
            if block.spec.deleted == Some(true)
                || (affinity_check && allocation::affine_node(&block) != Some(request.node))
            {
                return Ok(None);
            }
            let mut updated = block.clone();
            let taken = allocation::assign(&mut updated, 1, request.handle_id, request.secondary)?;
            let Some(address) = taken.first().copied() else {
                return Ok(None);
            };
            match self.blocks.replace(&updated).await {
                Ok(written) => {
                    self.cluster.observe_block(written);
                    debug!(%address, block = %cidr, handle = request.handle_id, "assigned");
                    return Ok(Some((cidr, address)));
                }
                Err(e) if e.is_conflict() => match self.reread_block(cidr).await? {
                    Some(fresh) => block = fresh,
                    None => return Ok(None),
                },
                Err(e) if e.is_not_found() => {
                    self.cluster.forget_block(&cidr);
                    return Ok(None);
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(IpamError::Contention {
            what: format!("assigning from block {cidr}"),
        })
    }

    /// Claims a block for a node: pending affinity, block creation, confirmed affinity.
    async fn claim_block(&self, node: &str, cidr: IpNet) -> Result<Claim, IpamError> {
        let lock = self.block_lock(cidr);
        let _serialised = lock.lock().await;
        let affinity = self.pending_affinity(node, cidr).await?;
        let block = allocation::new_block(cidr, Some(names::host_affinity(node)), now_nanos())?;
        match self.blocks.create(&block).await {
            Ok(created) => {
                info!(block = %cidr, node, "claimed block");
                self.cluster.observe_block(created);
            }
            Err(e) if e.is_already_exists() => match self.reread_block(cidr).await? {
                Some(existing) if allocation::affine_node(&existing) == Some(node) => {}
                _ => {
                    // Someone else's block: withdraw our pending claim.
                    self.affinities.delete_read(&affinity).await?;
                    self.cluster
                        .forget_affinity(affinity.metadata.name.as_deref().unwrap_or(""));
                    return Ok(Claim::Taken);
                }
            },
            Err(e) => return Err(e.into()),
        }
        self.confirm_affinity(affinity).await?;
        Ok(Claim::Claimed)
    }

    async fn pending_affinity(&self, node: &str, cidr: IpNet) -> Result<BlockAffinity, IpamError> {
        let wanted = allocation::new_block_affinity(node, &cidr, AffinityState::Pending);
        let name = wanted.metadata.name.clone().unwrap_or_default();
        for _ in 0..WRITE_ATTEMPTS {
            match self.affinities.create(&wanted).await {
                Ok(created) => {
                    self.cluster.observe_affinity(created.clone());
                    return Ok(created);
                }
                Err(e) if e.is_already_exists() => {}
                Err(e) => return Err(e.into()),
            }
            let Some(mut existing) = self.affinities.get(&name).await? else {
                continue;
            };
            if existing.spec.state == AffinityState::Confirmed.as_str() {
                return Ok(existing);
            }
            existing.spec.state = AffinityState::Pending.as_str().to_owned();
            match self.affinities.replace(&existing).await {
                Ok(updated) => {
                    self.cluster.observe_affinity(updated.clone());
                    return Ok(updated);
                }
                Err(e) if e.is_conflict() || e.is_not_found() => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(IpamError::Contention {
            what: format!("claiming BlockAffinity {name}"),
        })
    }

    async fn confirm_affinity(&self, mut affinity: BlockAffinity) -> Result<(), IpamError> {
        let name = affinity.metadata.name.clone().unwrap_or_default();
        for _ in 0..WRITE_ATTEMPTS {
            if affinity.spec.state == AffinityState::Confirmed.as_str() {
                return Ok(());
            }
            affinity.spec.state = AffinityState::Confirmed.as_str().to_owned();
            match self.affinities.replace(&affinity).await {
                Ok(confirmed) => {
                    self.cluster.observe_affinity(confirmed);
                    return Ok(());
                }
                Err(e) if e.is_conflict() => match self.affinities.get(&name).await? {
                    Some(fresh) => affinity = fresh,
                    None => break,
                },
                Err(e) => return Err(e.into()),
            }
        }
        Err(IpamError::Contention {
            what: format!("confirming BlockAffinity {name}"),
        })
    }

    /// Calico's `releaseBlockAffinity` with `RequireEmpty`: an empty block affine to the node is
    /// deleted together with its affinity; a non-empty one is left alone.
    async fn release_affinity_if_empty(&self, node: &str, cidr: IpNet) -> Result<(), IpamError> {
        let lock = self.block_lock(cidr);
        let _serialised = lock.lock().await;
        let name = names::block_affinity_name(node, &cidr);
        let Some(mut affinity) = self.affinities.get(&name).await? else {
            self.cluster.forget_affinity(&name);
            return Ok(());
        };
        let Some(block) = self.reread_block(cidr).await? else {
            return Ok(());
        };
        if block.spec.affinity.is_some() && allocation::affine_node(&block) != Some(node) {
            // A stale affinity: the block belongs to another node.
            self.affinities.delete_read(&affinity).await?;
            self.cluster.forget_affinity(&name);
            return Ok(());
        }
        if !allocation::is_empty(&block) {
            return Ok(());
        }
        affinity.spec.state = AffinityState::PendingDeletion.as_str().to_owned();
        let affinity = match self.affinities.replace(&affinity).await {
            Ok(a) => a,
            Err(e) if e.is_conflict() || e.is_not_found() => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        self.delete_block(block).await?;
        self.affinities.delete_read(&affinity).await?;
        self.cluster.forget_affinity(&name);
        info!(block = %cidr, node, "released empty block whose pool no longer selects the node");
        Ok(())
    }

    /// Deletes a block the way Calico does: marked deleted first (a conditional write, since a
    /// Kubernetes delete cannot compare contents), then deleted at exactly that version.
    async fn delete_block(&self, mut block: IpamBlock) -> Result<bool, IpamError> {
        let Some(cidr) = block.cidr() else {
            return Ok(false);
        };
        block.spec.deleted = Some(true);
        let marked = match self.blocks.replace(&block).await {
            Ok(marked) => marked,
            Err(e) if e.is_conflict() || e.is_not_found() => return Ok(false),
            Err(e) => return Err(e.into()),
        };
        self.blocks.delete_read(&marked).await?;
        self.cluster.forget_block(&cidr);
        info!(block = %cidr, "deleted block");
        Ok(true)
    }

    /// Releases every address of a handle (deleting blocks left empty and without affinity, as
    /// Calico does) and deletes the IPAMHandle. Returns the addresses freed.
    pub async fn release_handle(&self, handle_id: &str) -> Result<Vec<IpAddr>, IpamError> {
        let mut cidrs = self.cluster.handle_blocks(handle_id);
        let handle = self.handles.get(&names::handle_name(handle_id)).await?;
        if let Some(h) = &handle {
            cidrs.extend(
                h.spec
                    .block
                    .keys()
                    .filter_map(|c| c.parse::<IpNet>().ok())
                    .map(|c| c.trunc()),
            );
        }
        let mut freed = Vec::new();
        for cidr in cidrs {
            freed.extend(self.release_in_block(handle_id, cidr).await?);
        }
        if let Some(h) = handle {
            self.handles
                .delete(
                    h.metadata.name.as_deref().unwrap_or(""),
                    Some(kube::api::Preconditions {
                        uid: h.metadata.uid.clone(),
                        resource_version: None,
                    }),
                )
                .await?;
        }
        if !freed.is_empty() {
            debug!(handle = handle_id, addresses = ?freed, "released");
        }
        Ok(freed)
    }

    async fn release_in_block(
        &self,
        handle_id: &str,
        cidr: IpNet,
    ) -> Result<Vec<IpAddr>, IpamError> {
        let lock = self.block_lock(cidr);
        let _serialised = lock.lock().await;
        let Some(mut block) = self.read_block(cidr).await? else {
            return Ok(Vec::new());
        };
        for _ in 0..WRITE_ATTEMPTS {
            let mut updated = block.clone();
            let freed = allocation::release_handle(&mut updated, handle_id)?;
            if freed.is_empty() {
                return Ok(freed);
            }
            if allocation::is_empty(&updated) && updated.spec.affinity.is_none() {
                if self.delete_block(updated).await? {
                    return Ok(freed);
                }
            } else {
                match self.blocks.replace(&updated).await {
                    Ok(written) => {
                        self.cluster.observe_block(written);
                        return Ok(freed);
                    }
                    Err(e) if e.is_conflict() => {}
                    Err(e) if e.is_not_found() => {
                        self.cluster.forget_block(&cidr);
                        return Ok(Vec::new());
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            match self.reread_block(cidr).await? {
                Some(fresh) => block = fresh,
                None => return Ok(Vec::new()),
            }
        }
        Err(IpamError::Contention {
            what: format!("releasing {handle_id} from block {cidr}"),
        })
    }

    /// Makes the IPAMHandle agree with the blocks: one entry per block holding addresses for it
    /// (deleted when there are none).
    pub async fn sync_handle(&self, handle_id: &str) -> Result<(), IpamError> {
        let mut counts: BTreeMap<String, i64> = BTreeMap::new();
        for (cidr, _) in self.cluster.handle_addresses(handle_id) {
            *counts.entry(cidr.to_string()).or_default() += 1;
        }
        let name = names::handle_name(handle_id);
        if !counts.is_empty() {
            match self
                .handles
                .create(&allocation::new_handle(handle_id, counts.clone()))
                .await
            {
                Ok(_) => return Ok(()),
                Err(e) if e.is_already_exists() => {}
                Err(e) => return Err(e.into()),
            }
        }
        for _ in 0..WRITE_ATTEMPTS {
            let Some(mut handle) = self.handles.get(&name).await? else {
                if counts.is_empty() {
                    return Ok(());
                }
                match self
                    .handles
                    .create(&allocation::new_handle(handle_id, counts.clone()))
                    .await
                {
                    Ok(_) => return Ok(()),
                    Err(e) if e.is_already_exists() => continue,
                    Err(e) => return Err(e.into()),
                }
            };
            if counts.is_empty() {
                self.handles.delete_read(&handle).await?;
                return Ok(());
            }
            if handle.spec.block == counts && handle.spec.deleted != Some(true) {
                return Ok(());
            }
            handle.spec.block = counts.clone();
            handle.spec.deleted = Some(false);
            match self.handles.replace(&handle).await {
                Ok(_) => return Ok(()),
                Err(e) if e.is_conflict() || e.is_not_found() => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(IpamError::Contention {
            what: format!("writing IPAMHandle {name}"),
        })
    }
}
