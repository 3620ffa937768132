//! The steps that change the pools: NEW created (or enabled) and checked usable, OLD disabled,
//! then OLD's blocks released and OLD deleted, in Calico's order.

use std::convert::Infallible;

use ippool_rules::cidr;
use ippool_rules::model::IpPool;
use serde_json::json;

use super::MigrateError;
use super::steps::Migration;
use crate::api::CalicoKind;
use crate::migration::events::Event;
use crate::migration::step::Step;
use crate::pool_delete::{DeleteError, delete_pool};
use crate::pool_write::{Decision, update_pool};
use crate::release::{ReleaseStep, Released, release_block, release_stale_affinity};
use ippool_ipam::plan::TargetAction;
use ippool_ipam::pool_delete::assess;
use ippool_ipam::snapshot::{Parts, Snapshot};

/// What the release and delete steps read.
const RELEASE_PARTS: Parts = Parts {
    pools: true,
    blocks: true,
    affinities: true,
    handles: false,
    pods: true,
    nodes: true,
    namespaces: false,
};

impl Migration<'_> {
    pub(super) async fn create_new(&self) -> Result<(), MigrateError> {
        let plan = self.plan(Step::CreateNew)?;
        let calico = self.calico();
        let name = &plan.to.name;
        match plan.target_action {
            TargetAction::Create => {
                if let Some(pool) = &plan.new_pool {
                    match calico.create(CalicoKind::Pool, name, pool, false).await {
                        Ok(IpPool { .. }) => {}
                        Err(e) if e.status_code() == Some(409) => {}
                        Err(e) => return Err(e.into()),
                    }
                }
            }
            TargetAction::Enable => {
                update_pool::<Infallible>(&calico, name, false, &mut async |p: &IpPool| {
                    Ok(if p.is_enabled() {
                        Decision::Unchanged
                    } else {
                        Decision::Patch(json!({"spec": {"disabled": false}}))
                    })
                })
                .await?;
            }
            TargetAction::Use => {}
        }
        // Usable: it is there, enabled, and has the planned CIDR.
        let pool = calico
            .get::<IpPool>(CalicoKind::Pool, name)
            .await?
            .ok_or_else(|| MigrateError::NewPoolUnusable {
                name: name.clone(),
                problem: "does not exist after being created".to_owned(),
            })?;
        if !pool.is_enabled() {
            return Err(MigrateError::NewPoolUnusable {
                name: name.clone(),
                problem: "is disabled or being deleted".to_owned(),
            });
        }
        let cidr = pool.spec.cidr_net().map(|c| cidr::canonical(&c));
        if cidr != Some(plan.to.cidr) {
            return Err(MigrateError::NewPoolUnusable {
                name: name.clone(),
                problem: format!(
                    "has CIDR {}, not the planned {}",
                    pool.spec.cidr.as_deref().unwrap_or("(none)"),
                    plan.to.cidr
                ),
            });
        }
        Ok(())
    }

    pub(super) async fn disable_old(&self) -> Result<(), MigrateError> {
        update_pool::<Infallible>(
            &self.calico(),
            &self.state.from,
            false,
            &mut async |p: &IpPool| {
                Ok(if p.spec.disabled == Some(true) {
                    Decision::Unchanged
                } else {
                    Decision::Patch(json!({"spec": {"disabled": true}}))
                })
            },
        )
        .await?;
        Ok(())
    }

    async fn snapshot(&self) -> Result<Snapshot, MigrateError> {
        Ok(crate::load::snapshot(&self.exec.client, &self.exec.apis, RELEASE_PARTS).await?)
    }

    pub(super) async fn release_old(&self) -> Result<(), MigrateError> {
        let snapshot = self.snapshot().await?;
        let Some(assessment) = assess(&snapshot, &self.state.from) else {
            return Ok(());
        };
        let refusals = assessment.refusals(false);
        if !refusals.is_empty() {
            return Err(MigrateError::Refused(refusals));
        }
        let calico = self.calico();
        let progress = self.exec.progress.clone();
        let mut observer = async |step: ReleaseStep| {
            progress.emit(Event::Released {
                change: step.to_string(),
            });
        };
        for entry in &assessment.blocks {
            let outcome = match &entry.block {
                Some(block) => {
                    release_block(&calico, block, &entry.affinities, true, &mut observer).await?
                }
                None => {
                    let mut last = Released::AlreadyGone;
                    for affinity in &entry.affinities {
                        last =
                            release_stale_affinity(&calico, affinity, None, &mut observer).await?;
                    }
                    last
                }
            };
            if let Released::KeptInUse { allocations } | Released::LostRace { allocations } =
                outcome
            {
                return Err(MigrateError::AllocationsRemain {
                    block: entry.cidr.clone(),
                    allocations,
                });
            }
        }
        Ok(())
    }

    pub(super) async fn delete_old(&self) -> Result<(), MigrateError> {
        // Whatever an earlier interrupted release left is released again (it is idempotent).
        self.release_old().await?;
        let snapshot = self.snapshot().await?;
        let Some(assessment) = assess(&snapshot, &self.state.from) else {
            return Ok(());
        };
        let progress = self.exec.progress.clone();
        let mut observer = async |step: ReleaseStep| {
            progress.emit(Event::Released {
                change: step.to_string(),
            });
        };
        match delete_pool(&self.calico(), &assessment, false, &mut observer).await {
            Ok(_) | Err(DeleteError::Gone { .. }) => Ok(()),
            Err(DeleteError::Refused(refusals)) => Err(MigrateError::Refused(refusals)),
            Err(e) => Err(e.into()),
        }
    }
}
