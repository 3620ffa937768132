//! Releasing blocks and affinities in Calico's own order (libcalico-go's
//! `releaseBlockAffinity`): mark the affinity `pendingDeletion`; delete the block only if it is
//! still empty, conditional on the resourceVersion just read, so that a concurrent allocation wins;
//! else take the affinity off the block; then delete the affinity. Every write is conditional on a
//! resourceVersion and retried from a fresh read on conflict.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use ippool_rules::cidr;
use ippool_rules::model::{BlockAffinity, IpamBlock, IpamHandle};
use serde::Serialize;
use serde_json::json;

use crate::allocation::{self, BlockError};
use crate::api::CalicoKind;
use crate::check::LeakedAllocation;
use crate::gc::{GcCandidate, GcPlan};
use crate::ipam_ref::{AffinityRef, BlockRef};
use crate::names;
use crate::request_error::RequestError;
use crate::rest::CalicoClient;

/// Attempts per object before a stream of conflicts is reported as an error.
const ATTEMPTS: usize = 8;

/// A write made, reported as it happens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReleaseStep {
    /// The affinity was marked `pendingDeletion`.
    AffinityMarked {
        affinity: String,
    },
    BlockDeleted {
        block: String,
    },
    /// A block that still holds addresses lost its `host:` affinity (Calico's way; it lingers
    /// until its last address is released).
    BlockAffinityCleared {
        block: String,
    },
    AffinityDeleted {
        affinity: String,
    },
    /// A concurrent allocation won: the affinity went back to `confirmed`.
    AffinityRestored {
        affinity: String,
    },
    /// Leaked addresses of a handle released from a block.
    AddressesReleased {
        block: String,
        handle: String,
        addresses: Vec<IpAddr>,
    },
    /// A handle's count for a block lowered (it still holds addresses elsewhere).
    HandleUpdated {
        handle: String,
    },
    HandleDeleted {
        handle: String,
    },
    PoolDeleted {
        pool: String,
    },
}

impl std::fmt::Display for ReleaseStep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReleaseStep::AffinityMarked { affinity } => {
                write!(f, "blockaffinity {affinity} marked pendingDeletion")
            }
            ReleaseStep::BlockDeleted { block } => write!(f, "ipamblock {block} deleted"),
            ReleaseStep::BlockAffinityCleared { block } => {
                write!(
                    f,
                    "ipamblock {block} still in use: its node affinity removed"
                )
            }
            ReleaseStep::AffinityDeleted { affinity } => {
                write!(f, "blockaffinity {affinity} deleted")
            }
            ReleaseStep::AffinityRestored { affinity } => write!(
                f,
                "blockaffinity {affinity} restored to confirmed (its block gained an allocation)"
            ),
            ReleaseStep::AddressesReleased {
                block,
                handle,
                addresses,
            } => {
                let list: Vec<String> = addresses.iter().map(IpAddr::to_string).collect();
                write!(
                    f,
                    "ipamblock {block}: released {} (handle {handle})",
                    list.join(", ")
                )
            }
            ReleaseStep::HandleUpdated { handle } => write!(f, "ipamhandle {handle} updated"),
            ReleaseStep::HandleDeleted { handle } => write!(f, "ipamhandle {handle} deleted"),
            ReleaseStep::PoolDeleted { pool } => write!(f, "ippool {pool} deleted"),
        }
    }
}

/// How a release ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase", tag = "outcome")]
pub enum Released {
    /// Everything asked for was removed.
    Removed,
    /// The block holds addresses and emptiness was required; nothing was changed.
    KeptInUse { allocations: usize },
    /// The block gained an allocation while being released; it was kept and its affinity restored.
    LostRace { allocations: usize },
    /// Nothing was left to remove.
    AlreadyGone,
}

#[derive(Debug, thiserror::Error)]
pub enum ReleaseError {
    #[error(transparent)]
    Request(#[from] RequestError),
    #[error(
        "{object} kept changing while being released ({ATTEMPTS} conflicting writes in a row); \
         something is writing it continuously — run the command again later"
    )]
    Contended { object: String },
    #[error("{0}; the block was left unchanged")]
    Block(#[from] BlockError),
}

fn version(object_rv: &Option<String>) -> serde_json::Value {
    object_rv
        .as_ref()
        .map_or(serde_json::Value::Null, |rv| json!(rv))
}

/// Releases a block: each of its affinities in Calico's order, then — when no affinity was left
/// to do it — the block itself if empty. With `require_empty`, a block holding addresses is left
/// untouched (gc); without, it only loses its affinity (pool delete, as Calico does).
pub async fn release_block(
    calico: &CalicoClient,
    block: &BlockRef,
    affinities: &[AffinityRef],
    require_empty: bool,
    observer: &mut impl AsyncFnMut(ReleaseStep),
) -> Result<Released, ReleaseError> {
    let mut outcome = Released::AlreadyGone;
    for affinity in affinities {
        match release_affinity(calico, affinity, &block.name, require_empty, observer).await? {
            Released::AlreadyGone => {}
            kept @ (Released::KeptInUse { .. } | Released::LostRace { .. }) => return Ok(kept),
            Released::Removed => outcome = Released::Removed,
        }
    }
    match delete_empty_block(calico, &block.name, observer).await? {
        Released::AlreadyGone => Ok(outcome),
        // Without emptiness required the affinities were the job; a block still holding
        // addresses stays, as in Calico.
        Released::KeptInUse { .. } if !require_empty => Ok(Released::Removed),
        other => Ok(other),
    }
}

/// Releases one affinity (node `affinity.node`) of block `block_name`, in Calico's order.
pub async fn release_affinity(
    calico: &CalicoClient,
    affinity: &AffinityRef,
    block_name: &str,
    require_empty: bool,
    observer: &mut impl AsyncFnMut(ReleaseStep),
) -> Result<Released, ReleaseError> {
    for _ in 0..ATTEMPTS {
        let Some(current) = calico
            .get::<BlockAffinity>(CalicoKind::Affinity, &affinity.name)
            .await?
        else {
            return Ok(Released::AlreadyGone);
        };
        let block = calico
            .get::<IpamBlock>(CalicoKind::Block, block_name)
            .await?;
        let Some(block) = block else {
            // Block gone: the affinity is stale (#4471); remove it.
            match delete_affinity(calico, &current, observer).await? {
                Some(done) => return Ok(done),
                None => continue,
            }
        };
        let host = names::host_affinity(&current.spec.node);
        if block.spec.affinity.as_deref().is_some_and(|a| a != host) {
            // The block belongs to another node: this affinity is stale; the block is not ours.
            match delete_affinity(calico, &current, observer).await? {
                Some(done) => return Ok(done),
                None => continue,
            }
        }
        let allocations = block.allocated_count();
        if require_empty && allocations > 0 {
            return Ok(Released::KeptInUse { allocations });
        }
        let marked = if current.spec.state == "pendingDeletion" {
            current
        } else {
            let patch = json!({
                "metadata": {"resourceVersion": version(&current.metadata.resource_version)},
                "spec": {"state": "pendingDeletion"},
            });
            match calico
                .merge_patch::<BlockAffinity>(CalicoKind::Affinity, &affinity.name, &patch, false)
                .await
            {
                Ok(marked) => {
                    observer(ReleaseStep::AffinityMarked {
                        affinity: affinity.name.clone(),
                    })
                    .await;
                    marked
                }
                Err(e) if e.is_conflict() || e.is_not_found() => continue,
                Err(e) => return Err(e.into()),
            }
        };
        if allocations == 0 {
            match calico
                .delete(
                    CalicoKind::Block,
                    block_name,
                    block.metadata.resource_version.as_deref(),
                    false,
                )
                .await
            {
                Ok(true) => {
                    observer(ReleaseStep::BlockDeleted {
                        block: block_name.to_owned(),
                    })
                    .await
                }
                Ok(false) => {}
                Err(e) if e.is_conflict() => {
                    let now = calico
                        .get::<IpamBlock>(CalicoKind::Block, block_name)
                        .await?;
                    match now.map(|b| b.allocated_count()) {
                        Some(allocations) if allocations > 0 && require_empty => {
                            restore_affinity(calico, &affinity.name, observer).await?;
                            return Ok(Released::LostRace { allocations });
                        }
                        _ => continue,
                    }
                }
                Err(e) => return Err(e.into()),
            }
        } else {
            let patch = json!({
                "metadata": {"resourceVersion": version(&block.metadata.resource_version)},
                "spec": {"affinity": null},
            });
            match calico
                .merge_patch::<IpamBlock>(CalicoKind::Block, block_name, &patch, false)
                .await
            {
                Ok(_) => {
                    observer(ReleaseStep::BlockAffinityCleared {
                        block: block_name.to_owned(),
                    })
                    .await
                }
                Err(e) if e.is_conflict() || e.is_not_found() => continue,
                Err(e) => return Err(e.into()),
            }
        }
        match delete_affinity(calico, &marked, observer).await? {
            Some(done) => return Ok(done),
            None => continue,
        }
    }
    Err(ReleaseError::Contended {
        object: format!("blockaffinity {}", affinity.name),
    })
}

/// Deletes the affinity at the version read. `None` on conflict (caller re-reads).
async fn delete_affinity(
    calico: &CalicoClient,
    affinity: &BlockAffinity,
    observer: &mut impl AsyncFnMut(ReleaseStep),
) -> Result<Option<Released>, ReleaseError> {
    let name = affinity.metadata.name.clone().unwrap_or_default();
    match calico
        .delete(
            CalicoKind::Affinity,
            &name,
            affinity.metadata.resource_version.as_deref(),
            false,
        )
        .await
    {
        Ok(true) => {
            observer(ReleaseStep::AffinityDeleted { affinity: name }).await;
            Ok(Some(Released::Removed))
        }
        Ok(false) => Ok(Some(Released::AlreadyGone)),
        Err(e) if e.is_conflict() => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Puts an affinity back to `confirmed` after a concurrent allocation won the block.
async fn restore_affinity(
    calico: &CalicoClient,
    name: &str,
    observer: &mut impl AsyncFnMut(ReleaseStep),
) -> Result<(), ReleaseError> {
    for _ in 0..ATTEMPTS {
        let Some(current) = calico
            .get::<BlockAffinity>(CalicoKind::Affinity, name)
            .await?
        else {
            return Ok(());
        };
        if current.spec.state != "pendingDeletion" {
            return Ok(());
        }
        let patch = json!({
            "metadata": {"resourceVersion": version(&current.metadata.resource_version)},
            "spec": {"state": "confirmed"},
        });
        match calico
            .merge_patch::<BlockAffinity>(CalicoKind::Affinity, name, &patch, false)
            .await
        {
            Ok(_) => {
                observer(ReleaseStep::AffinityRestored {
                    affinity: name.to_owned(),
                })
                .await;
                return Ok(());
            }
            Err(e) if e.is_conflict() => continue,
            Err(e) if e.is_not_found() => return Ok(()),
            Err(e) => return Err(e.into()),
        }
    }
    Err(ReleaseError::Contended {
        object: format!("blockaffinity {name}"),
    })
}

/// Deletes a block if it is empty, conditional on the version read (a concurrent allocation makes
/// the delete fail and the block is re-examined).
pub async fn delete_empty_block(
    calico: &CalicoClient,
    name: &str,
    observer: &mut impl AsyncFnMut(ReleaseStep),
) -> Result<Released, ReleaseError> {
    for _ in 0..ATTEMPTS {
        let Some(block) = calico.get::<IpamBlock>(CalicoKind::Block, name).await? else {
            return Ok(Released::AlreadyGone);
        };
        let allocations = block.allocated_count();
        if allocations > 0 {
            return Ok(Released::KeptInUse { allocations });
        }
        match calico
            .delete(
                CalicoKind::Block,
                name,
                block.metadata.resource_version.as_deref(),
                false,
            )
            .await
        {
            Ok(true) => {
                observer(ReleaseStep::BlockDeleted {
                    block: name.to_owned(),
                })
                .await;
                return Ok(Released::Removed);
            }
            Ok(false) => return Ok(Released::AlreadyGone),
            Err(e) if e.is_conflict() => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(ReleaseError::Contended {
        object: format!("ipamblock {name}"),
    })
}

/// Removes a stale affinity whose block is missing or belongs elsewhere, or finishes a release
/// stuck in `pendingDeletion`: the block (if any) goes only if empty.
pub async fn release_stale_affinity(
    calico: &CalicoClient,
    affinity: &AffinityRef,
    block_name: Option<&str>,
    observer: &mut impl AsyncFnMut(ReleaseStep),
) -> Result<Released, ReleaseError> {
    match block_name {
        Some(block) => release_affinity(calico, affinity, block, true, observer).await,
        None => {
            let block = cidr::parse_lenient(&affinity.cidr)
                .map(|net| names::block_name(&net))
                .unwrap_or_else(|_| affinity.cidr.replace(['.', ':', '/'], "-"));
            release_affinity(calico, affinity, &block, true, observer).await
        }
    }
}

/// Carries out a gc plan: each candidate released in Calico's order with emptiness required, so
/// that anything that gained an allocation since the plan was made is kept. Returns each
/// candidate's outcome, in plan order.
pub async fn release_leftovers(
    calico: &CalicoClient,
    plan: &GcPlan,
    observer: &mut impl AsyncFnMut(ReleaseStep),
) -> Result<Vec<Released>, ReleaseError> {
    let mut outcomes = Vec::with_capacity(plan.candidates.len());
    for candidate in &plan.candidates {
        let released = match candidate {
            GcCandidate::Block {
                block, affinities, ..
            } => release_block(calico, block, affinities, true, observer).await?,
            GcCandidate::Affinity {
                affinity, block, ..
            } => {
                release_stale_affinity(
                    calico,
                    affinity,
                    block.as_ref().map(|b| b.name.as_str()),
                    observer,
                )
                .await?
            }
        };
        outcomes.push(released);
    }
    Ok(outcomes)
}

/// What releasing leaked allocations did.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LeakRelease {
    pub released: Vec<IpAddr>,
    /// Leaked addresses left alone, with the reason.
    pub skipped: Vec<(IpAddr, String)>,
}

/// Releases leaked allocations as Calico releases by handle: in each block, every handle whose
/// addresses there are all leaked loses them (block written conditional on its resourceVersion,
/// re-read and re-applied on conflict); then each handle's count for the block is lowered, and
/// a handle left with nothing is deleted.
pub async fn release_leaked(
    calico: &CalicoClient,
    leaked: &[LeakedAllocation],
    observer: &mut impl AsyncFnMut(ReleaseStep),
) -> Result<LeakRelease, ReleaseError> {
    let mut outcome = LeakRelease::default();
    // block name → handle → leaked ordinals
    let mut by_block: BTreeMap<&str, BTreeMap<&str, BTreeSet<usize>>> = BTreeMap::new();
    for leak in leaked {
        match &leak.handle {
            Some(handle) => {
                by_block
                    .entry(leak.block.as_str())
                    .or_default()
                    .entry(handle.as_str())
                    .or_default()
                    .insert(leak.ordinal);
            }
            None => outcome.skipped.push((
                leak.address,
                "the allocation records no handle to release it by".to_owned(),
            )),
        }
    }
    // handle → block CIDR → addresses released there
    let mut handle_counts: BTreeMap<String, BTreeMap<String, i64>> = BTreeMap::new();
    for (block_name, handles) in by_block {
        let released =
            release_in_block(calico, block_name, &handles, &mut outcome, observer).await?;
        for (handle, (cidr, count)) in released {
            *handle_counts
                .entry(handle)
                .or_default()
                .entry(cidr)
                .or_default() += count;
        }
    }
    for (handle, counts) in handle_counts {
        lower_handle(calico, &handle, &counts, observer).await?;
    }
    Ok(outcome)
}

/// Releases the given handles' leaked ordinals in one block; returns handle → (block CIDR, count).
async fn release_in_block(
    calico: &CalicoClient,
    block_name: &str,
    handles: &BTreeMap<&str, BTreeSet<usize>>,
    outcome: &mut LeakRelease,
    observer: &mut impl AsyncFnMut(ReleaseStep),
) -> Result<BTreeMap<String, (String, i64)>, ReleaseError> {
    for _ in 0..ATTEMPTS {
        let Some(mut block) = calico
            .get::<IpamBlock>(CalicoKind::Block, block_name)
            .await?
        else {
            return Ok(BTreeMap::new());
        };
        let current: Vec<(usize, Option<String>)> = allocation::allocations(&block)?
            .into_iter()
            .map(|a| (a.ordinal, a.handle_id().map(str::to_owned)))
            .collect();
        let mut freed: Vec<(String, Vec<IpAddr>)> = Vec::new();
        let mut skipped = Vec::new();
        for (handle, ordinals) in handles {
            let held: BTreeSet<usize> = current
                .iter()
                .filter(|(_, h)| h.as_deref() == Some(*handle))
                .map(|(o, _)| *o)
                .collect();
            if held.is_empty() {
                continue;
            }
            if !held.is_subset(ordinals) {
                // The handle holds an address here that was not found leaked: leave it all.
                let net = allocation::checked_cidr(&block)?;
                skipped.extend(ordinals.iter().filter_map(|o| {
                    cidr::nth_address(&net, *o as u128).map(|a| {
                        (
                            a,
                            format!("handle {handle} also holds addresses in use in this block"),
                        )
                    })
                }));
                continue;
            }
            let addresses = allocation::release_handle(&mut block, handle)?;
            freed.push(((*handle).to_owned(), addresses));
        }
        if freed.is_empty() {
            outcome.skipped.extend(skipped);
            return Ok(BTreeMap::new());
        }
        let spec = &block.spec;
        let patch = json!({
            "metadata": {"resourceVersion": version(&block.metadata.resource_version)},
            "spec": {
                "allocations": spec.allocations,
                "unallocated": spec.unallocated,
                "attributes": spec.attributes,
                "sequenceNumber": spec.sequence_number,
                "sequenceNumberForAllocation": spec.sequence_number_for_allocation,
            },
        });
        match calico
            .merge_patch::<IpamBlock>(CalicoKind::Block, block_name, &patch, false)
            .await
        {
            Ok(_) => {
                outcome.skipped.extend(skipped);
                let mut counts = BTreeMap::new();
                for (handle, addresses) in freed {
                    outcome.released.extend(addresses.iter().copied());
                    counts.insert(
                        handle.clone(),
                        (block.spec.cidr.clone(), addresses.len() as i64),
                    );
                    observer(ReleaseStep::AddressesReleased {
                        block: block_name.to_owned(),
                        handle,
                        addresses,
                    })
                    .await;
                }
                return Ok(counts);
            }
            Err(e) if e.is_conflict() => continue,
            Err(e) if e.is_not_found() => return Ok(BTreeMap::new()),
            Err(e) => return Err(e.into()),
        }
    }
    Err(ReleaseError::Contended {
        object: format!("ipamblock {block_name}"),
    })
}

/// Lowers a handle's per-block counts by `released`; deletes the handle when nothing is left.
async fn lower_handle(
    calico: &CalicoClient,
    handle_id: &str,
    released: &BTreeMap<String, i64>,
    observer: &mut impl AsyncFnMut(ReleaseStep),
) -> Result<(), ReleaseError> {
    let name = names::handle_name(handle_id);
    for _ in 0..ATTEMPTS {
        let Some(handle) = calico.get::<IpamHandle>(CalicoKind::Handle, &name).await? else {
            return Ok(());
        };
        let mut remaining = handle.spec.block.clone();
        for (cidr, count) in released {
            if let Some(held) = remaining.get_mut(cidr) {
                *held -= count;
            }
        }
        remaining.retain(|_, count| *count > 0);
        let result = if remaining.is_empty() {
            calico
                .delete(
                    CalicoKind::Handle,
                    &name,
                    handle.metadata.resource_version.as_deref(),
                    false,
                )
                .await
                .map(|_| ReleaseStep::HandleDeleted {
                    handle: handle_id.to_owned(),
                })
        } else {
            let block: serde_json::Map<String, serde_json::Value> = handle
                .spec
                .block
                .keys()
                .map(|cidr| {
                    (
                        cidr.clone(),
                        remaining
                            .get(cidr)
                            .map_or(serde_json::Value::Null, |c| json!(c)),
                    )
                })
                .collect();
            let patch = json!({
                "metadata": {"resourceVersion": version(&handle.metadata.resource_version)},
                "spec": {"block": block},
            });
            calico
                .merge_patch::<IpamHandle>(CalicoKind::Handle, &name, &patch, false)
                .await
                .map(|_| ReleaseStep::HandleUpdated {
                    handle: handle_id.to_owned(),
                })
        };
        match result {
            Ok(step) => {
                observer(step).await;
                return Ok(());
            }
            Err(e) if e.is_conflict() => continue,
            Err(e) if e.is_not_found() => return Ok(()),
            Err(e) => return Err(e.into()),
        }
    }
    Err(ReleaseError::Contended {
        object: format!("ipamhandle {name}"),
    })
}
