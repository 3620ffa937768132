//! Deleting a pool in the safe order: [`delete_pool`] refuses what the assessment
//! ([`ippool_ipam::pool_delete::assess`]) refuses, then does what Calico's own pool deletion does —
//! release the pool's block affinities, then delete the pool — after releasing leaked allocations
//! when asked.

use std::net::IpAddr;

use ippool_ipam::ipam_ref::BlockRef;
use ippool_ipam::names;
use ippool_ipam::pool_delete::{DeleteAssessment, DeleteRefusal, list_some};
use ippool_rules::cidr;
use ippool_rules::model::IpPool;
use serde::Serialize;

use crate::api::CalicoKind;
use crate::client::CalicoClient;
use crate::release::{
    ReleaseError, ReleaseStep, Released, delete_empty_block, release_block, release_leaked,
};
use crate::request_error::RequestError;

/// How the delete went.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeleteOutcome {
    pub released_addresses: Vec<IpAddr>,
    pub blocks_deleted: usize,
    /// Blocks that still held addresses and stay (without affinity), as in Calico.
    pub blocks_left: Vec<String>,
    pub affinities_released: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum DeleteError {
    #[error("refused: {}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n  "))]
    Refused(Vec<DeleteRefusal>),
    #[error(
        "{count} leaked address(es) could not be released ({reasons}); the pool was not deleted"
    )]
    LeaksRemain { count: usize, reasons: String },
    #[error(transparent)]
    Release(#[from] ReleaseError),
    #[error(transparent)]
    Request(#[from] RequestError),
    #[error("IP pool {pool:?} no longer exists")]
    Gone { pool: String },
}

/// Deletes the assessed pool: refuses on any refusal; releases leaked allocations (when asked),
/// then every block affinity in Calico's order (empty blocks go, others lose their affinity),
/// then empty blocks without affinity, then the pool — conditional on the version assessed, and
/// on conflict only if the pool is still disabled.
pub async fn delete_pool(
    calico: &CalicoClient,
    assessment: &DeleteAssessment,
    release_leaked_allocations: bool,
    observer: &mut impl AsyncFnMut(ReleaseStep),
) -> Result<DeleteOutcome, DeleteError> {
    let refusals = assessment.refusals(release_leaked_allocations);
    if !refusals.is_empty() {
        return Err(DeleteError::Refused(refusals));
    }
    let mut outcome = DeleteOutcome::default();
    if !assessment.leaked.is_empty() {
        let released = release_leaked(calico, &assessment.leaked, observer).await?;
        outcome.released_addresses = released.released;
        if !released.skipped.is_empty() {
            return Err(DeleteError::LeaksRemain {
                count: released.skipped.len(),
                reasons: list_some(
                    released
                        .skipped
                        .iter()
                        .map(|(address, why)| format!("{address}: {why}")),
                    5,
                ),
            });
        }
    }
    let mut counting = async |step: ReleaseStep| {
        match &step {
            ReleaseStep::BlockDeleted { .. } => outcome.blocks_deleted += 1,
            ReleaseStep::AffinityDeleted { .. } => outcome.affinities_released += 1,
            ReleaseStep::BlockAffinityCleared { block } => outcome.blocks_left.push(block.clone()),
            _ => {}
        }
        observer(step).await;
    };
    for entry in &assessment.blocks {
        let block = entry.block.clone().unwrap_or_else(|| BlockRef {
            name: cidr::parse_lenient(&entry.cidr)
                .map(|n| names::block_name(&n))
                .unwrap_or_default(),
            cidr: entry.cidr.clone(),
            resource_version: None,
        });
        if entry.affinities.is_empty() {
            if let Released::KeptInUse { .. } =
                delete_empty_block(calico, &block.name, &mut counting).await?
            {
                counting(ReleaseStep::BlockAffinityCleared {
                    block: block.name.clone(),
                })
                .await;
            }
        } else {
            release_block(calico, &block, &entry.affinities, false, &mut counting).await?;
        }
    }
    delete_pool_object(calico, assessment).await?;
    observer(ReleaseStep::PoolDeleted {
        pool: assessment.pool.clone(),
    })
    .await;
    Ok(outcome)
}

async fn delete_pool_object(
    calico: &CalicoClient,
    assessment: &DeleteAssessment,
) -> Result<(), DeleteError> {
    let mut version = assessment.resource_version.clone();
    loop {
        match calico
            .delete(
                CalicoKind::Pool,
                &assessment.pool,
                version.as_deref(),
                false,
            )
            .await
        {
            Ok(true) => return Ok(()),
            Ok(false) => {
                return Err(DeleteError::Gone {
                    pool: assessment.pool.clone(),
                });
            }
            Err(e) if e.is_conflict() => {
                let Some(pool) = calico
                    .get::<IpPool>(CalicoKind::Pool, &assessment.pool)
                    .await?
                else {
                    return Err(DeleteError::Gone {
                        pool: assessment.pool.clone(),
                    });
                };
                if pool.is_enabled() {
                    return Err(DeleteError::Refused(vec![DeleteRefusal::Enabled {
                        pool: assessment.pool.clone(),
                    }]));
                }
                version = pool.metadata.resource_version.clone();
            }
            Err(e) => return Err(e.into()),
        }
    }
}
