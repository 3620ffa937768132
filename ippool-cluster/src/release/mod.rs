//! Releasing blocks and affinities in Calico's own order (libcalico-go's
//! `releaseBlockAffinity`): mark the affinity `pendingDeletion`; delete the block only if it is
//! still empty, conditional on the resourceVersion just read, so that a concurrent allocation wins;
//! else take the affinity off the block; then delete the affinity. Every write is conditional on a
//! resourceVersion and retried from a fresh read on conflict.

mod affinity;
mod handles;

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use ippool_rules::cidr;
use ippool_rules::model::IpamBlock;
use serde::Serialize;
use serde_json::json;

use crate::api::CalicoKind;
use crate::client::CalicoClient;
use crate::request_error::RequestError;
use affinity::release_affinity;
use handles::{lower_handle, release_in_block};
use ippool_ipam::allocation::BlockError;
use ippool_ipam::check::LeakedAllocation;
use ippool_ipam::gc::{GcCandidate, GcPlan};
use ippool_ipam::ipam_ref::{AffinityRef, BlockRef};
use ippool_ipam::names;

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
