//! One affinity released in Calico's order (libcalico-go's `releaseBlockAffinity`), and the
//! affinity writes it is made of.

use ippool_rules::model::{BlockAffinity, IpamBlock};
use serde_json::json;

use super::{ATTEMPTS, ReleaseError, ReleaseStep, Released, version};
use crate::api::CalicoKind;
use crate::client::CalicoClient;
use ippool_ipam::ipam_ref::AffinityRef;
use ippool_ipam::names;

/// Releases one affinity (node `affinity.node`) of block `block_name`, in Calico's order.
pub(super) async fn release_affinity(
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
